//! Layer application: every layer.md feature in one three-layer image, checked directly and against
//! `umoci unpack` of the same OCI layout (the trees must be identical).

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

use anyhow::{ensure, Result};
use common::*;
use tar::EntryType;

/// A valid v2 `security.capability` value granting CAP_NET_RAW (bit 13), effective.
fn cap_net_raw() -> Vec<u8> {
    let mut v = Vec::new();
    for w in [0x0200_0001u32, 1 << 13, 0, 0, 0] {
        v.extend_from_slice(&w.to_le_bytes());
    }
    v
}

/// Three layers exercising whiteouts, opaque dirs (with the same-layer rule), hardlinks within and across
/// layers, symlinks, setuid/setgid/sticky modes, owners, PAX mtimes, xattrs, devices and type changes.
pub fn feature_layers() -> Vec<Vec<u8>> {
    let cap = cap_net_raw();
    let mut l1 = Layer::new();
    l1.dir("./", 0o755)
        .dir("etc/", 0o755)
        .file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644)
        .file_owned("etc/shadow", b"root:*:1::::::\n", 0o640, 0, 42)
        .dir("usr/", 0o755)
        .dir("usr/bin/", 0o755)
        .file("usr/bin/su", b"su", 0o4755)
        .file_owned("usr/bin/wall", b"wall", 0o2755, 0, 5)
        .pax(&[("SCHILY.xattr.security.capability", &cap)])
        .file("usr/bin/ping", b"ping", 0o755)
        .dir("tmp/", 0o1777)
        .dir_owned("data/", 0o2750, 1000, 1000)
        .pax(&[
            ("mtime", b"1500000000.123456789"),
            ("SCHILY.xattr.user.note", b"hello"),
        ])
        .file_owned("data/a", b"alpha", 0o600, 1000, 1000)
        .pax(&[("uid", b"3000000"), ("gid", b"3000001")])
        .file("data/big-ids", b"ids", 0o644)
        .pax(&[("SCHILY.xattr.user.dir", b"d")])
        .dir("xdir/", 0o700)
        .dir("hl/", 0o755)
        .file("hl/orig", b"shared inode", 0o640)
        .hardlink("hl/same-layer", "hl/orig")
        .dir("lnk/", 0o755)
        .symlink("lnk/abs", "/etc/passwd")
        .symlink("lnk/rel", "../etc/passwd")
        .symlink("lnk/dangling", "/nowhere/at/all")
        .dir("dev/", 0o755)
        .node("dev/mynull", EntryType::Char, 1, 3, 0o666)
        .node("dev/myloop", EntryType::Block, 7, 0, 0o660)
        .node("dev/myfifo", EntryType::Fifo, 0, 0, 0o644)
        .dir("gone/", 0o755)
        .file("gone/x", b"x", 0o644)
        .file("gone-file", b"gf", 0o644)
        .dir("opq/", 0o755)
        .file("opq/old1", b"1", 0o644)
        .dir("opq/sub/", 0o755)
        .file("opq/sub/old2", b"2", 0o644)
        .dir("dir2file/", 0o755)
        .file("dir2file/child", b"c", 0o644)
        .file("file2dir", b"f", 0o644);
    let mut l2 = Layer::new();
    l2.dir("./", 0o755)
        .whiteout("gone")
        .whiteout("gone-file")
        .dir("opq/", 0o755)
        .file("opq/new-before-marker", b"nb", 0o644)
        .opaque("opq")
        .file("opq/new-after-marker", b"na", 0o644)
        .file("dir2file", b"now a file", 0o644)
        .dir("file2dir/", 0o711)
        .file("file2dir/inside", b"i", 0o644)
        .dir("hl/", 0o755)
        .hardlink("hl/cross-layer", "hl/orig")
        .dir("etc/", 0o755)
        .file(
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
            0o644,
        )
        .file("same-layer", b"kept", 0o644)
        .whiteout("same-layer");
    let mut l3 = Layer::new();
    l3.dir("gone/", 0o750)
        .file("gone/reborn", b"r", 0o644)
        .dir("tmp/", 0o755)
        .dir("lnk/", 0o755)
        .file("lnk/rel", b"no longer a link", 0o600);
    vec![l1.finish(), l2.finish(), l3.finish()]
}

fn unpack_layout(d: &Dirs, layout: &str, bundle: &str) -> Result<()> {
    let (ok, _, err) = carte_bundle(&[
        "-q".as_ref(),
        "unpack".as_ref(),
        d.path(layout).as_os_str(),
        d.path(bundle).as_os_str(),
        "--args".as_ref(),
        "/bin/true".as_ref(),
    ])?;
    ensure!(ok, "carte-bundle unpack failed: {err}");
    Ok(())
}

#[test]
fn features_apply_as_layer_md_says() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root (device nodes, ownership)");
        return Ok(());
    }
    let d = Dirs::new()?;
    oci_layout(
        &d.path("layout"),
        &Image::new(feature_layers(), Comp::Gzip),
        "latest",
    )?;
    unpack_layout(&d, "layout", "bundle")?;
    let r = d.path("bundle/rootfs");
    // Whiteouts remove lower paths; the whiteout files themselves never appear.
    ensure!(!r.join("gone-file").exists() && !r.join("gone/x").exists());
    ensure!(fs::read(r.join("gone/reborn"))? == b"r");
    ensure!(!r.join(".wh.gone").exists() && !r.join("opq/.wh..wh..opq").exists());
    // Opaque: lower children gone, this layer's children (before and after the marker) kept.
    let mut opq: Vec<String> = fs::read_dir(r.join("opq"))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    opq.sort();
    ensure!(
        opq == ["new-after-marker", "new-before-marker"],
        "opq holds {opq:?}"
    );
    // Same-layer rule: a whiteout does not hide a file of its own layer.
    ensure!(fs::read(r.join("same-layer"))? == b"kept");
    // Type changes.
    ensure!(fs::symlink_metadata(r.join("dir2file"))?.is_file());
    ensure!(fs::symlink_metadata(r.join("file2dir"))?.is_dir());
    ensure!(fs::symlink_metadata(r.join("lnk/rel"))?.is_file());
    // Hardlinks share an inode, within and across layers.
    let ino = |p: &str| fs::metadata(r.join(p)).map(|m| m.ino());
    ensure!(ino("hl/orig")? == ino("hl/same-layer")? && ino("hl/orig")? == ino("hl/cross-layer")?);
    // Modes survive chown: setuid, setgid, sticky.
    let mode = |p: &str| fs::symlink_metadata(r.join(p)).map(|m| m.permissions().mode() & 0o7777);
    ensure!(
        mode("usr/bin/su")? == 0o4755 && mode("usr/bin/wall")? == 0o2755 && mode("data")? == 0o2750
    );
    ensure!(
        mode("tmp")? == 0o755,
        "a later directory entry replaces the attributes"
    );
    // Owners, including PAX ids above the ustar limit.
    let m = fs::metadata(r.join("data/big-ids"))?;
    ensure!(m.uid() == 3_000_000 && m.gid() == 3_000_001);
    ensure!(fs::metadata(r.join("etc/shadow"))?.gid() == 42);
    // mtimes, with PAX nanoseconds.
    let a = fs::metadata(r.join("data/a"))?;
    ensure!(a.mtime() == 1_500_000_000 && a.mtime_nsec() == 123_456_789);
    ensure!(fs::metadata(r.join("etc"))?.mtime() == T0 as i64);
    // Symlinks are stored verbatim, never followed.
    ensure!(fs::read_link(r.join("lnk/abs"))?.to_str() == Some("/etc/passwd"));
    ensure!(fs::read_link(r.join("lnk/dangling"))?.to_str() == Some("/nowhere/at/all"));
    // Devices and FIFOs.
    let ft = |p: &str| fs::symlink_metadata(r.join(p)).map(|m| m.file_type());
    ensure!(
        ft("dev/mynull")?.is_char_device()
            && ft("dev/myloop")?.is_block_device()
            && ft("dev/myfifo")?.is_fifo()
    );
    ensure!(fs::symlink_metadata(r.join("dev/mynull"))?.rdev() == nix::sys::stat::makedev(1, 3));
    // xattrs: file capabilities and user.*.
    let x = carte_bundle::sys::lgetxattrs(&r.join("usr/bin/ping"))?;
    ensure!(
        x.iter()
            .any(|(k, v)| k == "security.capability" && *v == cap_net_raw()),
        "ping xattrs: {x:?}"
    );
    let x = carte_bundle::sys::lgetxattrs(&r.join("data/a"))?;
    ensure!(x == [("user.note".to_string(), b"hello".to_vec())]);
    Ok(())
}

#[test]
fn tree_is_identical_to_umoci_unpack() -> Result<()> {
    if !is_root() || !have("umoci") {
        eprintln!("skipped: needs root and umoci");
        return Ok(());
    }
    let d = Dirs::new()?;
    oci_layout(
        &d.path("layout"),
        &Image::new(feature_layers(), Comp::Gzip),
        "latest",
    )?;
    unpack_layout(&d, "layout", "ours")?;
    run(std::process::Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:latest", d.path("layout").display()))
        .arg(d.path("umoci")))?;
    let ours = snapshot(&d.path("ours/rootfs"))?;
    let theirs = snapshot(&d.path("umoci/rootfs"))?;
    let diffs = diff(&ours, &theirs);
    ensure!(
        diffs.is_empty(),
        "trees differ (first = carte-bundle, second = umoci):\n{}",
        diffs.join("\n")
    );
    ensure!(
        ours.len() > 30,
        "snapshot too small to mean anything: {}",
        ours.len()
    );
    if std::env::var_os("SHOW_TREE").is_some() {
        for (k, v) in &ours {
            eprintln!("{k}: {v}");
        }
    }
    Ok(())
}

#[test]
fn implicit_parents_and_rootless_mapping() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root (chown to mapped ids)");
        return Ok(());
    }
    let d = Dirs::new()?;
    let mut l = Layer::new();
    l.file_owned("a/b/c/file", b"deep", 0o644, 1000, 1000)
        .node("dev/null", EntryType::Char, 1, 3, 0o666)
        .node("fifo", EntryType::Fifo, 0, 0, 0o600);
    oci_layout(
        &d.path("layout"),
        &Image::new(vec![l.finish()], Comp::None),
        "latest",
    )?;
    let (ok, _, err) = carte_bundle(&[
        "-q".as_ref(),
        "unpack".as_ref(),
        d.path("layout").as_os_str(),
        d.path("b").as_os_str(),
        "--rootless".as_ref(),
        "--uid-map".as_ref(),
        "0:100000:65536".as_ref(),
        "--gid-map".as_ref(),
        "0:200000:65536".as_ref(),
    ])?;
    ensure!(ok, "{err}");
    let r = d.path("b/rootfs");
    let m = fs::metadata(r.join("a/b/c/file"))?;
    ensure!(
        m.uid() == 101_000 && m.gid() == 201_000,
        "owner {}:{}",
        m.uid(),
        m.gid()
    );
    let p = fs::metadata(r.join("a/b"))?;
    ensure!(p.is_dir() && p.permissions().mode() & 0o7777 == 0o755);
    ensure!(!r.join("dev/null").exists(), "rootless skips device nodes");
    ensure!(
        fs::symlink_metadata(r.join("fifo"))?.file_type().is_fifo(),
        "FIFOs need no privilege"
    );
    ensure!(
        err.contains("device nodes"),
        "a warning says devices were skipped: {err}"
    );
    let cfg: serde_json::Value = serde_json::from_slice(&fs::read(d.path("b/config.json"))?)?;
    ensure!(cfg["linux"]["uidMappings"][0]["hostID"] == 100000);
    ensure!(cfg["linux"]["gidMappings"][0]["hostID"] == 200000);
    ensure!(cfg["linux"]["namespaces"]
        .as_array()
        .is_some_and(|a| a.iter().any(|n| n["type"] == "user")));
    Ok(())
}

/// The same comparison on layers umoci itself wrote (`insert`, `--whiteout`, `--opaque`) from a busybox
/// rootfs with owners, modes, hardlinks and xattrs, read back through skopeo's docker-archive as well.
#[test]
fn umoci_built_layers_match_umoci_unpack() -> Result<()> {
    use std::process::Command;
    if !is_root() || !have("umoci") || !have("skopeo") {
        eprintln!("skipped: needs root, umoci and skopeo");
        return Ok(());
    }
    let d = Dirs::new()?;
    let rfs = d.path("rfs");
    busybox_rootfs(&rfs)?;
    fs::create_dir_all(rfs.join("opt/app"))?;
    fs::write(rfs.join("opt/app/data"), b"data")?;
    fs::hard_link(rfs.join("opt/app/data"), rfs.join("opt/app/data.lnk"))?;
    std::os::unix::fs::chown(rfs.join("opt/app"), Some(1000), Some(50))?;
    fs::set_permissions(rfs.join("opt/app"), fs::Permissions::from_mode(0o2775))?;
    fs::write(rfs.join("opt/suid"), b"s")?;
    fs::create_dir_all(rfs.join("srv/old"))?;
    fs::write(rfs.join("srv/old/file"), b"hidden by the opaque layer")?;
    fs::set_permissions(rfs.join("opt/suid"), fs::Permissions::from_mode(0o4711))?;
    carte_bundle::sys::lsetxattr(&rfs.join("opt/app/data"), "user.origin", b"test")?;
    fs::create_dir_all(d.path("over/only"))?;
    fs::write(d.path("over/only/new"), b"new")?;
    let img = format!("{}:latest", d.path("lay").display());
    run(Command::new("umoci")
        .arg("init")
        .arg("--layout")
        .arg(d.path("lay")))?;
    run(Command::new("umoci").args(["new", "--image", &img]))?;
    run(Command::new("umoci")
        .args(["insert", "--image", &img])
        .arg(&rfs)
        .arg("/"))?;
    run(Command::new("umoci").args(["insert", "--image", &img, "--whiteout", "/etc/group"]))?;
    run(Command::new("umoci")
        .args(["insert", "--image", &img, "--opaque"])
        .arg(d.path("over"))
        .arg("/srv"))?;
    run(Command::new("umoci")
        .args(["insert", "--image", &img])
        .arg(d.path("over/only/new"))
        .arg("/etc/added"))?;
    run(Command::new("umoci").args(["config", "--image", &img, "--config.cmd", "/bin/sh"]))?;
    run(Command::new("umoci")
        .args(["unpack", "--image", &img])
        .arg(d.path("umoci")))?;
    let da = d.path("da.tar");
    run(Command::new("skopeo")
        .args(["copy", "-q", &format!("oci:{img}")])
        .arg(format!("docker-archive:{}:x/y:1", da.display())))?;
    let want = snapshot(&d.path("umoci/rootfs"))?;
    ensure!(
        want.contains_key("srv/only/new")
            && !want.contains_key("srv/old")
            && !want.contains_key("etc/group")
    );
    ensure!(
        want.get("opt/app/data.lnk").is_some_and(
            |l| l.contains("hardlink-of=opt/app/data") && l.contains("xattr:user.origin")
        )
    );
    for (src, bundle) in [(d.path("lay"), "b-layout"), (da, "b-docker")] {
        let (ok, _, err) = carte_bundle(&[
            "-q".as_ref(),
            "unpack".as_ref(),
            src.as_os_str(),
            d.path(bundle).as_os_str(),
        ])?;
        ensure!(ok, "{err}");
        let diffs = diff(&snapshot(&d.path(bundle).join("rootfs"))?, &want);
        ensure!(
            diffs.is_empty(),
            "{bundle} differs from umoci:\n{}",
            diffs.join("\n")
        );
    }
    Ok(())
}
