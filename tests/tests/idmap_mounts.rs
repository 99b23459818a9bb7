//! Idmapped mounts (config.md `mounts[].uidMappings`/`gidMappings`, options `idmap`/`ridmap`): a host
//! directory owned by uid 1000 shows as root in a user-namespaced container and what the container
//! writes there lands as uid 1000 on the host; `ridmap` maps the mounts below an `rbind` too, `idmap`
//! only the top one; without maps the container's own mapping is used; and the refusals.
//!
//! runc 1.1.5 predates idmapped mounts (runc 1.2 has them): it bind-mounts without any mapping,
//! so its branch asserts the unmapped view (the overflow id 65534) and that it refuses none of it.

use carte_tests::*;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The id the kernel shows for an id the user namespace does not map (/proc/sys/kernel/overflowuid).
const OVERFLOW: &str = "65534:65534";

/// Root of the container mapped to host 100000, as engines do for user-namespaced pods.
fn userns(b: &mut Bundle) {
    b.namespace("user", None);
    let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.set("/linux/uidMappings", map.clone());
    b.set("/linux/gidMappings", map);
    b.remove_mount("/sys/fs/cgroup");
    b.remove_mount("/sys");
    b.mount(
        json!({"destination": "/sys", "type": "bind", "source": "/sys",
        "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}),
    );
}

/// On-disk 1000 shows as host 100000, which the container's namespace shows as its root.
fn shift_1000_to_root() -> Value {
    json!([{"containerID": 1000, "hostID": 100000, "size": 1}])
}

/// A mount entry of `src` on `dest` with `options` and, if given, its own maps.
fn volume(dest: &str, src: &Path, options: &[&str], maps: Option<Value>) -> Value {
    let mut m = json!({"destination": dest, "type": "bind", "source": src, "options": options});
    if let Some(maps) = maps {
        m["uidMappings"] = maps.clone();
        m["gidMappings"] = maps;
    }
    m
}

/// The host volume: `f` owned by 1000:1000, and `sub`, a tmpfs mounted on the host holding `g`
/// (1000:1000), to tell `ridmap` from `idmap` on an `rbind`. Unmounted by [`Volume`]'s drop.
struct Volume {
    dir: PathBuf,
}

impl Volume {
    fn new(ctx: &Ctx) -> Volume {
        let dir = ctx.tempdir().join("vol");
        let sub = dir.join("sub");
        std::fs::create_dir_all(&sub).expect("mkdir vol/sub");
        std::fs::write(dir.join("f"), "f").expect("write vol/f");
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs"])
            .arg(&sub)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount tmpfs on {}: {out:?}",
            sub.display()
        );
        std::fs::write(sub.join("g"), "g").expect("write vol/sub/g");
        for p in [dir.clone(), dir.join("f"), sub.clone(), sub.join("g")] {
            std::os::unix::fs::chown(&p, Some(1000), Some(1000)).expect("chown to 1000");
        }
        Volume { dir }
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.join("sub"))
            .status();
    }
}

fn owner(p: &Path) -> (u32, u32) {
    let m = std::fs::metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
    (m.uid(), m.gid())
}

#[test]
fn host_dir_of_uid_1000_shows_as_root_and_writes_land_as_1000() {
    let Some(ctx) = Ctx::new() else { return };
    let vol = Volume::new(&ctx);
    let mut b = ctx.bundle();
    userns(&mut b);
    for d in ["shifted", "top", "same", "plain"] {
        std::fs::create_dir_all(b.rootfs().join(d)).ok();
    }
    b.mount(volume(
        "/shifted",
        &vol.dir,
        &["rbind", "ridmap"],
        Some(shift_1000_to_root()),
    ));
    b.mount(volume(
        "/top",
        &vol.dir,
        &["rbind", "idmap"],
        Some(shift_1000_to_root()),
    ));
    // No maps of its own: the container's (0 → 100000), so on-disk 1000 is the container's 1000.
    // (`rbind`: in the container's mount namespace the host's tmpfs below is locked to its parent.)
    b.mount(volume("/same", &vol.dir, &["rbind", "idmap"], None));
    b.mount(volume("/plain", &vol.dir, &["rbind"], None));
    let id = ctx.id("idmap");
    let script = "for p in /shifted/f /shifted/sub/g /top/f /top/sub/g /same/f /plain/f; do \
        echo \"$p $(stat -c %u:%g $p)\"; done; \
        touch /shifted/by-root 2>&1 && echo wrote";
    b.sh(script);
    let out = ctx.rt.run(&id, &b, &[]);
    let seen = |p: &str| -> String {
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{p} ")))
            .unwrap_or("(missing)")
            .to_string()
    };
    // A plain bind: host 1000 is outside the container's range, whatever the runtime.
    assert_eq!(seen("/plain/f"), OVERFLOW, "{out}");
    if is_carte() {
        assert!(out.success(), "{out}");
        assert_eq!(seen("/shifted/f"), "0:0", "{out}");
        // ridmap: the tmpfs under the rbind is mapped too.
        assert_eq!(seen("/shifted/sub/g"), "0:0", "{out}");
        assert_eq!(seen("/top/f"), "0:0", "{out}");
        // idmap on an rbind: only the top mount is mapped; the tmpfs below is seen unmapped.
        assert_eq!(seen("/top/sub/g"), OVERFLOW, "{out}");
        assert_eq!(seen("/same/f"), "1000:1000", "{out}");
        assert!(out.stdout.contains("wrote"), "{out}");
        // Created by the container's root through the mapping: on disk, uid 1000.
        assert_eq!(owner(&vol.dir.join("by-root")), (1000, 1000));
    } else {
        // runc 1.1.5 knows neither the words nor the maps: plain binds, nothing mapped, and the
        // container's root (host 100000) may not write into a 1000-owned 0755 directory.
        for p in [
            "/shifted/f",
            "/shifted/sub/g",
            "/top/f",
            "/top/sub/g",
            "/same/f",
        ] {
            assert_eq!(seen(p), OVERFLOW, "{p}: {out}");
        }
        assert!(!vol.dir.join("by-root").exists(), "{out}");
    }
}

#[test]
fn mount_maps_work_without_a_user_namespace() {
    let Some(ctx) = Ctx::new() else { return };
    let vol = Volume::new(&ctx);
    let mut b = ctx.bundle();
    std::fs::create_dir_all(b.rootfs().join("v")).ok();
    // config.md requires a user namespace only when the mount brings no maps of its own.
    let to_root = json!([{"containerID": 1000, "hostID": 0, "size": 1}]);
    b.mount(volume("/v", &vol.dir, &["rbind", "idmap"], Some(to_root)));
    b.sh("stat -c %u:%g /v/f; touch /v/by-root && echo wrote");
    let id = ctx.id("idmapnous");
    let out = ctx.rt.run(&id, &b, &[]);
    if is_carte() {
        assert_eq!(out.stdout, "0:0\nwrote\n", "{out}");
        assert_eq!(owner(&vol.dir.join("by-root")), (1000, 1000));
    } else {
        // runc 1.1.5: a plain bind, the host's ids as they are, so the container's root (without
        // CAP_DAC_OVERRIDE in the test config) may not write into the 1000-owned 0755 directory.
        assert_eq!(out.stdout, "1000:1000\n", "{out}");
        assert!(!vol.dir.join("by-root").exists(), "{out}");
    }
}

#[test]
fn idmap_refusals_name_the_mount() {
    let Some(ctx) = Ctx::new() else { return };
    let src = ctx.tempdir();
    let cases: Vec<(Value, bool, &str)> = vec![
        // config.md: no maps and no user namespace MUST be an error.
        (
            volume("/m", &src, &["bind", "idmap"], None),
            false,
            "mounts[N].options",
        ),
        // config.md: uidMappings MUST come with gidMappings.
        (
            {
                let mut m = volume("/m", &src, &["bind", "idmap"], None);
                m["uidMappings"] = shift_1000_to_root();
                m
            },
            true,
            "mounts[N].gidMappings",
        ),
        // A filesystem without idmap support (sysfs): refused, naming the mount and the filesystem.
        (
            volume(
                "/m",
                Path::new("/sys/kernel"),
                &["rbind", "idmap"],
                Some(shift_1000_to_root()),
            ),
            true,
            "sysfs",
        ),
    ];
    for (i, (mount, with_userns, word)) in cases.into_iter().enumerate() {
        let mut b = ctx.bundle();
        if with_userns {
            userns(&mut b);
        }
        std::fs::create_dir_all(b.rootfs().join("m")).ok();
        b.mount(mount);
        let index = b.config()["mounts"].as_array().map_or(0, |a| a.len() - 1);
        let word = word.replace('N', &index.to_string());
        let id = ctx.id(&format!("idmapbad{i}"));
        let out = ctx.rt.create(&id, &b, &[]);
        if is_carte() {
            assert!(!out.success(), "case {i} was accepted: {out}");
            assert!(
                out.stderr.contains(&word),
                "case {i}: {word:?} not named: {out}"
            );
            if i == 2 {
                assert!(
                    out.stderr.contains("/m"),
                    "case {i}: mount not named: {out}"
                );
            }
        } else {
            // runc 1.1.5 ignores `idmap` and the maps: a plain bind, created without complaint.
            assert!(out.success(), "runc 1.1.5, case {i}: {out}");
        }
        ctx.rt.delete_force(&id);
        ctx.assert_no_leaks(&id);
    }
}

#[test]
fn features_advertise_idmap() {
    let Some(ctx) = Ctx::new() else { return };
    let f = ctx.rt.cmd(&["features"]).ok().json();
    let enabled = &f["linux"]["mountExtensions"]["idmap"]["enabled"];
    let words = f["mountOptions"].as_array().cloned().unwrap_or_default();
    if is_carte() {
        assert_eq!(enabled, &json!(true), "{f}");
        assert!(
            words.contains(&json!("idmap")) && words.contains(&json!("ridmap")),
            "{f}"
        );
    } else {
        // runc 1.1.5's features predate mountExtensions.
        assert!(enabled.is_null(), "{f}");
        assert!(!words.contains(&json!("idmap")), "{f}");
    }
}
