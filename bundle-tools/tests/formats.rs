//! Input formats: skopeo's docker-archive and oci-archive of a umoci-built busybox image (then run with runc),
//! legacy `docker save`, Docker 25's layout + manifest.json, nested multi-platform indexes, zstd, Docker media
//! types inside a layout, image selection, `list` and `inspect`.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context, Result};
use common::*;
use serde_json::{json, Value};

fn unpack(archive: &Path, bundle: &Path, extra: &[&str]) -> Result<Value> {
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "-q".as_ref(),
        "unpack".as_ref(),
        archive.as_os_str(),
        bundle.as_os_str(),
    ];
    args.extend(extra.iter().map(|s| std::ffi::OsStr::new(*s)));
    let (ok, _, err) = carte_bundle(&args)?;
    ensure!(ok, "unpack {} failed: {err}", archive.display());
    Ok(serde_json::from_slice(&fs::read(
        bundle.join("config.json"),
    )?)?)
}

/// Build `oci:DIR:latest` with umoci from a busybox-static rootfs, with every config field we convert.
fn umoci_busybox(d: &Dirs) -> Result<()> {
    busybox_rootfs(&d.path("rfs"))?;
    let img = format!("{}:latest", d.path("lay").display());
    run(Command::new("umoci")
        .arg("init")
        .arg("--layout")
        .arg(d.path("lay")))?;
    run(Command::new("umoci").args(["new", "--image", &img]))?;
    run(Command::new("umoci")
        .args(["insert", "--image", &img])
        .arg(d.path("rfs"))
        .arg("/"))?;
    run(Command::new("umoci").args([
        "config",
        "--image",
        &img,
        "--config.entrypoint",
        "/bin/sh",
        "--config.cmd",
        "-c",
        "--config.cmd",
        "echo hello $FOO; id -u; id -G; pwd",
        "--config.env",
        "FOO=from-image",
        "--config.workingdir",
        "/etc",
        "--config.user",
        "app",
        "--config.label",
        "com.example.x=y",
        "--config.stopsignal",
        "SIGINT",
        "--config.exposedports",
        "8080/tcp",
        "--config.volume",
        "/data",
    ]))?;
    Ok(())
}

/// Runtimes to run bundles with: runc when installed, and the binary named by `$CARTE` (e.g.
/// `target/release/carte`) when set, so the same bundle is checked against both.
fn runtimes() -> Vec<String> {
    let mut v = Vec::new();
    if have("runc") {
        v.push("runc".to_string());
    }
    if let Some(c) = std::env::var_os("CARTE") {
        v.push(c.to_string_lossy().into_owned());
    }
    v
}

/// `RUNTIME run` the bundle (fresh state root) and return its stdout.
fn run_bundle(runtime: &str, d: &Dirs, bundle: &Path, id: &str) -> Result<String> {
    let id = format!("{id}-{}", std::process::id());
    let root = d.path("runtime-root");
    let out = Command::new(runtime)
        .arg("--root")
        .arg(&root)
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(&id)
        .output()?;
    // Whatever happened, leave no container state behind.
    let _ = Command::new(runtime)
        .arg("--root")
        .arg(&root)
        .args(["delete", "-f", &id])
        .output();
    ensure!(
        out.status.success(),
        "{runtime} run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn skopeo_archives_unpack_convert_and_run() -> Result<()> {
    if !is_root() || !have("umoci") || !have("skopeo") {
        eprintln!("skipped: needs root, umoci and skopeo");
        return Ok(());
    }
    let d = Dirs::new()?;
    umoci_busybox(&d)?;
    let src = format!("oci:{}:latest", d.path("lay").display());
    run(Command::new("skopeo")
        .args(["copy", "-q", &src])
        .arg(format!(
            "docker-archive:{}:example/bb:latest",
            d.path("da.tar").display()
        )))?;
    run(Command::new("skopeo")
        .args(["copy", "-q", &src])
        .arg(format!("oci-archive:{}:latest", d.path("oa.tar").display())))?;
    run(Command::new("umoci")
        .args([
            "unpack",
            "--image",
            &format!("{}:latest", d.path("lay").display()),
        ])
        .arg(d.path("umoci")))?;
    let want = snapshot(&d.path("umoci/rootfs"))?;
    for (archive, extra) in [
        ("da.tar", vec!["--image", "example/bb"]),
        ("oa.tar", vec![]),
        ("lay", vec!["--image", "latest"]),
    ] {
        let bundle = d.path(&format!("b-{archive}"));
        let cfg = unpack(&d.path(archive), &bundle, &extra)?;
        let got = snapshot(&bundle.join("rootfs"))?;
        let diffs = diff(&got, &want);
        ensure!(
            diffs.is_empty(),
            "{archive}: tree differs from umoci's:\n{}",
            diffs.join("\n")
        );
        let p = &cfg["process"];
        ensure!(
            p["args"] == json!(["/bin/sh", "-c", "echo hello $FOO; id -u; id -G; pwd"]),
            "{archive}: args {}",
            p["args"]
        );
        ensure!(
            p["user"] == json!({"uid": 1000, "gid": 1000, "additionalGids": [50]}),
            "{archive}: user {}",
            p["user"]
        );
        ensure!(p["cwd"] == "/etc" && p["terminal"] == false);
        let env: Vec<&str> = p["env"]
            .as_array()
            .context("env")?
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        ensure!(
            env.contains(&"FOO=from-image")
                && env.contains(&"HOME=/home/app")
                && env.iter().any(|e| e.starts_with("PATH=")),
            "{env:?}"
        );
        let a = &cfg["annotations"];
        ensure!(a["com.example.x"] == "y" && a["org.opencontainers.image.stopSignal"] == "SIGINT");
        ensure!(
            a["org.opencontainers.image.exposedPorts"] == "8080/tcp"
                && a["org.opencontainers.image.os"] == "linux"
        );
        ensure!(cfg["mounts"].as_array().is_some_and(|m| m
            .iter()
            .any(|m| m["destination"] == "/data" && m["type"] == "tmpfs")));
        ensure!(cfg["root"] == json!({"path": "rootfs", "readonly": false}));
        for rt in runtimes() {
            let id = format!("cb-{}", archive.replace('.', "-"));
            let out = run_bundle(&rt, &d, &bundle, &id)?;
            ensure!(
                out == "hello from-image\n1000\n1000 50\n/etc\n",
                "{archive} under {rt}: container printed {out:?}"
            );
        }
    }
    // --args replaces Cmd, keeps Entrypoint; --env overrides the image's value.
    let bundle = d.path("b-override");
    unpack(
        &d.path("oa.tar"),
        &bundle,
        &["--env", "FOO=cli", "--args", "-c", "echo $FOO"],
    )?;
    for rt in runtimes() {
        ensure!(
            run_bundle(&rt, &d, &bundle, "cb-override")? == "cli\n",
            "under {rt}"
        );
    }
    Ok(())
}

fn two_file_layers() -> Vec<Vec<u8>> {
    let mut a = Layer::new();
    a.dir("etc/", 0o755)
        .file("etc/one", b"1", 0o644)
        .file("etc/gone", b"g", 0o644);
    let mut b = Layer::new();
    b.file("etc/two", b"2", 0o644).whiteout("etc/gone");
    vec![a.finish(), b.finish()]
}

fn check_two(bundle: &Path) -> Result<()> {
    let r = bundle.join("rootfs/etc");
    ensure!(
        fs::read(r.join("one"))? == b"1"
            && fs::read(r.join("two"))? == b"2"
            && !r.join("gone").exists()
    );
    Ok(())
}

#[test]
fn legacy_docker_save() -> Result<()> {
    let d = Dirs::new()?;
    for (name, comp) in [("plain.tar", Comp::None), ("gz.tar", Comp::Gzip)] {
        docker_legacy(
            &d.path(name),
            &Image::new(two_file_layers(), comp),
            "busybox:latest",
        )?;
        let b = d.path(&format!("b-{name}"));
        unpack(&d.path(name), &b, &["--image", "docker.io/library/busybox"])?;
        check_two(&b)?;
    }
    Ok(())
}

#[test]
fn docker25_layout_with_manifest_json() -> Result<()> {
    let d = Dirs::new()?;
    let lay = d.path("lay");
    let mut desc = put_image(&lay, &Image::new(two_file_layers(), Comp::None))?;
    desc["annotations"] = json!({"io.containerd.image.name": "docker.io/library/busybox:latest", "org.opencontainers.image.ref.name": "latest"});
    put_index(&lay, vec![desc])?;
    // Docker's own files point into blobs/; an OCI layout wins over them.
    fs::write(
        lay.join("manifest.json"),
        br#"[{"Config":"blobs/sha256/nope","RepoTags":["busybox:latest"],"Layers":[]}]"#,
    )?;
    fs::write(lay.join("repositories"), br#"{"busybox":{"latest":"x"}}"#)?;
    tar_dir(&lay, &d.path("docker25.tar"))?;
    unpack(
        &d.path("docker25.tar"),
        &d.path("b"),
        &["--image", "busybox:latest"],
    )?;
    check_two(&d.path("b"))
}

#[test]
fn nested_multi_platform_index() -> Result<()> {
    let d = Dirs::new()?;
    let lay = d.path("lay");
    let host = carte_bundle::Platform::host().architecture;
    let other = if host == "arm64" { "amd64" } else { "arm64" };
    let mut manifests = Vec::new();
    for arch in [host.as_str(), other] {
        let mut l = Layer::new();
        l.file("arch", arch.as_bytes(), 0o644);
        let mut img = Image::new(vec![l.finish()], Comp::Gzip);
        img.arch = arch.to_string();
        let mut desc = put_image(&lay, &img)?;
        desc["platform"] = json!({"os": "linux", "architecture": arch});
        manifests.push(desc);
    }
    // An attestation-like entry with an unknown media type must be ignored.
    manifests.push(json!({"mediaType": "application/vnd.example.unknown", "digest": format!("sha256:{}", "0".repeat(64)), "size": 1}));
    let inner = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
    let mut idx = put_blob(
        &lay,
        "application/vnd.oci.image.index.v1+json",
        &serde_json::to_vec(&inner)?,
    )?;
    idx["annotations"] = json!({"org.opencontainers.image.ref.name": "multi"});
    put_index(&lay, vec![idx])?;
    tar_dir(&lay, &d.path("multi.tar"))?;
    unpack(&d.path("multi.tar"), &d.path("b1"), &[])?;
    ensure!(fs::read(d.path("b1/rootfs/arch"))? == host.as_bytes());
    let want = format!("linux/{other}");
    let cfg = unpack(
        &d.path("multi.tar"),
        &d.path("b2"),
        &["--image", "multi", "--platform", &want, "--args", "true"],
    )?;
    ensure!(fs::read(d.path("b2/rootfs/arch"))? == other.as_bytes());
    ensure!(cfg["annotations"]["org.opencontainers.image.architecture"] == other);
    let (ok, _, err) = carte_bundle(&[
        "unpack".as_ref(),
        d.path("multi.tar").as_os_str(),
        d.path("b3").as_os_str(),
        "--platform".as_ref(),
        "linux/s390x".as_ref(),
    ])?;
    ensure!(
        !ok && err.contains("no image for platform linux/s390x"),
        "{err}"
    );
    Ok(())
}

#[test]
fn zstd_and_docker_media_types_in_layout() -> Result<()> {
    let d = Dirs::new()?;
    oci_layout(
        &d.path("zst"),
        &Image::new(two_file_layers(), Comp::Zstd),
        "latest",
    )?;
    unpack(&d.path("zst"), &d.path("b1"), &[])?;
    check_two(&d.path("b1"))?;
    // The same image as containerd exports it: Docker v2 manifest and layer media types.
    let lay = d.path("dock");
    let img = Image::new(two_file_layers(), Comp::Gzip);
    let mut layers = Vec::new();
    for l in &img.layers {
        layers.push(put_blob(
            &lay,
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            &compress(l, Comp::Gzip),
        )?);
    }
    let config = put_blob(
        &lay,
        "application/vnd.docker.container.image.v1+json",
        &img.config_json(),
    )?;
    let m = json!({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json", "config": config, "layers": layers});
    let desc = put_blob(
        &lay,
        "application/vnd.docker.distribution.manifest.v2+json",
        &serde_json::to_vec(&m)?,
    )?;
    put_index(&lay, vec![desc])?;
    unpack(&lay, &d.path("b2"), &[])?;
    check_two(&d.path("b2"))
}

#[test]
fn several_images_need_a_name() -> Result<()> {
    let d = Dirs::new()?;
    let lay = d.path("lay");
    let mut descs = Vec::new();
    for name in ["example.com/a:1", "example.com/b:1"] {
        let mut l = Layer::new();
        l.file("name", name.as_bytes(), 0o644);
        let mut desc = put_image(&lay, &Image::new(vec![l.finish()], Comp::Gzip))?;
        desc["annotations"] = json!({"org.opencontainers.image.ref.name": name});
        descs.push(desc);
    }
    put_index(&lay, descs)?;
    let (ok, _, err) =
        carte_bundle(&["unpack".as_ref(), lay.as_os_str(), d.path("b").as_os_str()])?;
    ensure!(
        !ok && err.contains("example.com/a:1")
            && err.contains("example.com/b:1")
            && err.contains("--image"),
        "{err}"
    );
    ensure!(!d.path("b").exists());
    unpack(&lay, &d.path("b"), &["--image", "example.com/b:1"])?;
    ensure!(fs::read(d.path("b/rootfs/name"))? == b"example.com/b:1");
    // list and inspect
    let (ok, out, err) = carte_bundle(&[
        "list".as_ref(),
        lay.as_os_str(),
        "-f".as_ref(),
        "json".as_ref(),
    ])?;
    ensure!(ok, "{err}");
    let v: Value = serde_json::from_str(&out)?;
    let list = v.as_array().context("list is an array")?;
    ensure!(
        list.len() == 2
            && list[0]["layers"] == 1
            && list[0]["platform"]
                .as_str()
                .is_some_and(|p| p.starts_with("linux/"))
    );
    ensure!(
        list[0]["created"] == "2024-01-02T03:04:05Z"
            && list[0]["size"].as_u64().is_some_and(|s| s > 0)
    );
    let (ok, out, _) = carte_bundle(&["list".as_ref(), lay.as_os_str()])?;
    ensure!(
        ok && out.lines().count() == 3 && out.contains("example.com/a:1"),
        "{out}"
    );
    let (ok, out, err) = carte_bundle(&[
        "inspect".as_ref(),
        lay.as_os_str(),
        "--image".as_ref(),
        "example.com/a:1".as_ref(),
    ])?;
    ensure!(ok, "{err}");
    let v: Value = serde_json::from_str(&out)?;
    ensure!(v["rootfs"]["type"] == "layers" && v["config"]["Cmd"] == json!(["/bin/sh"]));
    Ok(())
}
