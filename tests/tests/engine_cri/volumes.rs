//! Volumes and their mount propagation.

use carte_tests::engines::cri::{spec, Cri};
use carte_tests::engines::Rt;
use k8s_cri::v1 as cri;
use nix::mount::MsFlags;

/// Host mounts the volumes test made (a shared bind of its dir, tmpfs under it), detached on drop.
struct HostMounts(Vec<std::path::PathBuf>);

impl HostMounts {
    #[track_caller]
    fn mount(
        &mut self,
        src: Option<&str>,
        target: &std::path::Path,
        fstype: Option<&str>,
        flags: MsFlags,
    ) {
        let r = nix::mount::mount(src, target, fstype, flags, None::<&str>);
        assert!(r.is_ok(), "mount {}: {r:?}", target.display());
        self.0.push(target.to_path_buf());
    }
}

impl Drop for HostMounts {
    fn drop(&mut self) {
        for m in self.0.iter().rev() {
            let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Volumes with each mount propagation: `Private` sees no mount the host makes after the start,
/// `HostToContainer` sees it, and `Bidirectional` (privileged) makes a mount inside that appears on the host.
/// The CRI plugin requires the host path's mount to be shared (slave is enough for HostToContainer), as a
/// kubelet's /var/lib/kubelet is: this host's / is private, so the test makes its volume dir a shared bind
/// mount.
pub fn volumes(rt: Rt) {
    let Some(t) = Cri::new(rt) else { return };
    let cfg = t.pod_config("vol");
    let uid = cfg.metadata.clone().unwrap_or_default().uid;
    let v = t.d.dir().join(format!("vol-{uid}"));
    for sub in ["priv/m", "h2c/m", "bidi/m"] {
        let r = std::fs::create_dir_all(v.join(sub));
        assert!(r.is_ok(), "{r:?}");
    }
    let mut host = HostMounts(Vec::new());
    let vs = v.display().to_string();
    host.mount(Some(vs.as_str()), &v, None, MsFlags::MS_BIND);
    let r = nix::mount::mount(
        None::<&str>,
        &v,
        None::<&str>,
        MsFlags::MS_SHARED,
        None::<&str>,
    );
    assert!(r.is_ok(), "make {vs} shared: {r:?}");
    let mut cfg = cfg;
    spec::pod_sc(&mut cfg).privileged = true;
    let pod = t.run_pod(cfg);
    let mut c = spec::sleeper("c");
    spec::sc(&mut c).privileged = true;
    let vol = |sub: &str, p: cri::MountPropagation| cri::Mount {
        container_path: format!("/{sub}"),
        host_path: v.join(sub).display().to_string(),
        propagation: p as i32,
        ..Default::default()
    };
    c.mounts = vec![
        vol("priv", cri::MountPropagation::PropagationPrivate),
        vol("h2c", cri::MountPropagation::PropagationHostToContainer),
        vol("bidi", cri::MountPropagation::PropagationBidirectional),
    ];
    let id = t.start(&pod, c);
    for sub in ["priv", "h2c"] {
        host.mount(
            Some("tmpfs"),
            &v.join(sub).join("m"),
            Some("tmpfs"),
            MsFlags::empty(),
        );
        let r = std::fs::write(v.join(sub).join("m/f"), "from-host");
        assert!(r.is_ok(), "{r:?}");
    }
    let seen = t.sh(&id, "cat /priv/m/f 2>/dev/null; echo /; cat /h2c/m/f");
    assert_eq!(
        seen, "/\nfrom-host",
        "Private must not see the host's new mount, HostToContainer must"
    );
    t.sh(
        &id,
        "mount -t tmpfs tmpfs /bidi/m && echo from-ctr >/bidi/m/f",
    );
    host.0.push(v.join("bidi/m"));
    let got = std::fs::read_to_string(v.join("bidi/m/f")).unwrap_or_default();
    assert_eq!(
        got.trim(),
        "from-ctr",
        "the container's mount did not reach the host"
    );
}
