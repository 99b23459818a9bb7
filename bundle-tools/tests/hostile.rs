//! Hostile archives: nothing may be created, overwritten, chmod'ed or linked outside BUNDLE_DIR/rootfs.
//! Each case is either refused (error naming the entry, no bundle left) or confined (written inside the
//! rootfs); the rule chosen for each case is in the test name and in README.md.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

use anyhow::{ensure, Result};
use common::*;
use tar::EntryType;

/// A temp dir with an `outside/victim` file that no archive may touch.
struct Scene {
    d: Dirs,
    victim: PathBuf,
}

impl Scene {
    fn new() -> Result<Scene> {
        let d = Dirs::new()?;
        fs::create_dir(d.path("outside"))?;
        let victim = d.path("outside/victim");
        fs::write(&victim, b"precious")?;
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o600))?;
        Ok(Scene { d, victim })
    }

    /// The victim's path without its leading `/`, as an archive would spell it.
    fn victim_rel(&self) -> String {
        self.victim
            .to_string_lossy()
            .trim_start_matches('/')
            .to_string()
    }

    fn outside_dir(&self) -> String {
        self.d.path("outside").to_string_lossy().into_owned()
    }

    /// Unpack `layers`; check nothing outside the bundle changed; return (success, stderr).
    fn unpack(&self, layers: Vec<Vec<u8>>) -> Result<(bool, String)> {
        oci_layout(
            &self.d.path("layout"),
            &Image::new(layers, Comp::None),
            "latest",
        )?;
        let before = listing(&self.d.path("outside"))?;
        let (ok, _, err) = carte_bundle(&[
            "-q".as_ref(),
            "unpack".as_ref(),
            self.d.path("layout").as_os_str(),
            self.d.path("bundle").as_os_str(),
        ])?;
        ensure!(
            listing(&self.d.path("outside"))? == before,
            "files appeared outside the bundle"
        );
        let m = fs::metadata(&self.victim)?;
        ensure!(fs::read(&self.victim)? == b"precious", "victim overwritten");
        ensure!(
            m.permissions().mode() & 0o7777 == 0o600 && m.uid() == 0 || !is_root(),
            "victim chmod/chown'ed"
        );
        ensure!(m.nlink() == 1, "victim hardlinked from the bundle");
        if !ok {
            ensure!(
                !self.d.path("bundle").exists(),
                "a failed unpack left the bundle dir behind"
            );
            ensure!(err.lines().count() == 1, "error is not one line: {err}");
        }
        Ok((ok, err))
    }

    fn refused(&self, layers: Vec<Vec<u8>>, entry: &str) -> Result<()> {
        let (ok, err) = self.unpack(layers)?;
        ensure!(!ok, "archive was accepted");
        ensure!(
            err.contains(&format!("entry `{entry}`")),
            "error does not name `{entry}`: {err}"
        );
        Ok(())
    }

    fn confined(&self, layers: Vec<Vec<u8>>, inside: &str) -> Result<()> {
        let (ok, err) = self.unpack(layers)?;
        ensure!(ok, "unpack failed: {err}");
        let p = self.d.path("bundle/rootfs").join(inside);
        ensure!(
            fs::symlink_metadata(&p).is_ok(),
            "expected {} inside the rootfs",
            p.display()
        );
        Ok(())
    }
}

fn layer(f: impl FnOnce(&mut Layer)) -> Vec<u8> {
    let mut l = Layer::new();
    f(&mut l);
    l.finish()
}

#[test]
fn dotdot_in_name_is_refused() -> Result<()> {
    let s = Scene::new()?;
    let name = "../../outside/victim";
    s.refused(
        vec![layer(|l| {
            l.file("ok", b"1", 0o644).file(name, b"pwned", 0o644);
        })],
        name,
    )
}

#[test]
fn absolute_name_is_confined() -> Result<()> {
    let s = Scene::new()?;
    let abs = s.victim.to_string_lossy().into_owned();
    s.confined(
        vec![layer(|l| {
            l.file(&abs, b"pwned", 0o644);
        })],
        &s.victim_rel(),
    )
}

#[test]
fn symlink_to_root_then_file_through_it_is_confined() -> Result<()> {
    let s = Scene::new()?;
    let through = format!("a/{}", s.victim_rel());
    s.confined(
        vec![layer(|l| {
            l.symlink("a", "/").file(&through, b"pwned", 0o644);
        })],
        &s.victim_rel(),
    )
}

#[test]
fn relative_symlink_escape_from_earlier_layer_is_confined() -> Result<()> {
    let s = Scene::new()?;
    let up = "../../../../../../../../../..".to_string() + &s.outside_dir();
    let l1 = layer(|l| {
        l.dir("d/", 0o755).symlink("d/esc", &up);
    });
    let l2 = layer(|l| {
        l.file("d/esc/victim", b"pwned", 0o644)
            .file("d/esc/new-file", b"pwned", 0o644);
    });
    s.confined(
        vec![l1, l2],
        &format!("{}/new-file", s.outside_dir().trim_start_matches('/')),
    )
}

#[test]
fn file_over_planted_symlink_replaces_the_link() -> Result<()> {
    let s = Scene::new()?;
    let abs = s.victim.to_string_lossy().into_owned();
    let l1 = layer(|l| {
        l.symlink("evil", &abs);
    });
    let l2 = layer(|l| {
        l.file("evil", b"pwned", 0o4777);
    });
    s.confined(vec![l1, l2], "evil")?;
    ensure!(fs::symlink_metadata(s.d.path("bundle/rootfs/evil"))?.is_file());
    Ok(())
}

#[test]
fn directory_entry_over_planted_symlink_does_not_chmod_target() -> Result<()> {
    let s = Scene::new()?;
    let out = s.outside_dir();
    s.confined(
        vec![layer(|l| {
            l.symlink("evil", &out).dir("evil/", 0o777);
        })],
        "evil",
    )?;
    ensure!(fs::metadata(s.d.path("outside"))?.permissions().mode() & 0o777 != 0o777);
    Ok(())
}

#[test]
fn hardlink_to_absolute_outside_path_is_confined_and_fails() -> Result<()> {
    // Resolved inside the rootfs, where the target does not exist: refused.
    let s = Scene::new()?;
    let abs = s.victim.to_string_lossy().into_owned();
    s.refused(
        vec![layer(|l| {
            l.hardlink("hl", &abs);
        })],
        "hl",
    )
}

#[test]
fn hardlink_with_dotdot_is_refused() -> Result<()> {
    let s = Scene::new()?;
    s.refused(
        vec![layer(|l| {
            l.hardlink("hl", "../../outside/victim");
        })],
        "hl",
    )
}

#[test]
fn hardlink_through_symlinked_dir_stays_inside() -> Result<()> {
    let s = Scene::new()?;
    let out = s.outside_dir();
    s.refused(
        vec![layer(|l| {
            l.symlink("d", &out).hardlink("hl", "d/victim");
        })],
        "hl",
    )
}

#[test]
fn whiteout_with_dotdot_is_refused() -> Result<()> {
    let s = Scene::new()?;
    s.refused(
        vec![layer(|l| {
            l.file("../outside/.wh.victim", b"", 0o644);
        })],
        "../outside/.wh.victim",
    )?;
    let s = Scene::new()?;
    s.refused(
        vec![layer(|l| {
            l.dir("x/", 0o755).file("x/.wh..", b"", 0o644);
        })],
        "x/.wh..",
    )
}

#[test]
fn whiteout_through_symlink_is_confined() -> Result<()> {
    let s = Scene::new()?;
    let out = s.outside_dir();
    let l1 = layer(|l| {
        l.symlink("d", &out);
    });
    let l2 = layer(|l| {
        l.file("d/.wh.victim", b"", 0o644).opaque("d");
    });
    s.confined(vec![l1, l2], "d")
}

#[test]
fn replacing_the_rootfs_itself_is_refused() -> Result<()> {
    let s = Scene::new()?;
    s.refused(
        vec![layer(|l| {
            l.symlink(".", "/");
        })],
        ".",
    )?;
    let s = Scene::new()?;
    s.refused(
        vec![layer(|l| {
            l.file("./", b"x", 0o644);
        })],
        "./",
    )
}

#[test]
fn device_through_symlink_is_confined() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return Ok(());
    }
    let s = Scene::new()?;
    let out = s.outside_dir();
    s.confined(
        vec![layer(|l| {
            l.symlink("d", &out)
                .node("d/null", EntryType::Char, 1, 3, 0o666);
        })],
        &format!("{}/null", out.trim_start_matches('/')),
    )
}

#[test]
fn docker_manifest_paths_outside_the_archive_are_refused() -> Result<()> {
    let d = Dirs::new()?;
    let mut b = tar::Builder::new(fs::File::create(d.path("evil.tar"))?);
    let config = Image::new(vec![b"x".to_vec()], Comp::None).config_json();
    for (name, data) in [
        ("c.json", config),
        (
            "manifest.json",
            br#"[{"Config":"c.json","RepoTags":["x:1"],"Layers":["../../etc/passwd"]}]"#.to_vec(),
        ),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, &data[..])?;
    }
    b.finish()?;
    drop(b);
    let (ok, _, err) = carte_bundle(&[
        "unpack".as_ref(),
        d.path("evil.tar").as_os_str(),
        d.path("b").as_os_str(),
    ])?;
    ensure!(!ok && err.contains("../../etc/passwd"), "{err}");
    ensure!(!d.path("b").exists());
    Ok(())
}
