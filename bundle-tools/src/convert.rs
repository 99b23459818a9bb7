//! Image config → runtime config.json, following the OCI image spec's conversion.md on top of `spec::default_spec`.

use serde_json::{json, Map, Value};
use std::path::PathBuf;

use crate::confine::Root;
use crate::error::{Error, Result};
use crate::idmap::IdMap;
use crate::image::Image;
use crate::{passwd, spec};

/// What the command line adds to or overrides in the image's own settings.
#[derive(Debug, Clone, Default)]
pub struct ConvertOptions {
    /// Replaces the image's Cmd (Entrypoint is kept).
    pub args: Option<Vec<String>>,
    /// `K=V` pairs that override or extend the image's Env.
    pub env: Vec<String>,
    pub terminal: bool,
    pub rootless: bool,
    pub uid_map: Vec<IdMap>,
    pub gid_map: Vec<IdMap>,
    /// `--net`: network the container through `carte net` hooks.
    pub net: Option<NetHooks>,
}

/// What `--net` writes: hooks running `CARTE --root ROOT net add|del NETWORK` (the same hooks
/// `carte spec --net` writes; hooks are runtime-agnostic, so the bundle networks under runc too).
#[derive(Debug, Clone)]
pub struct NetHooks {
    pub network: String,
    /// The carte binary the hooks run (absolute).
    pub carte: PathBuf,
    /// carte's state root, where `carte net` caches the CNI results between add and del.
    pub root: PathBuf,
}

impl NetHooks {
    /// Locate carte (next to this binary, else in PATH) and check the network name (CNI's rule).
    pub fn new(network: String, root: PathBuf) -> Result<NetHooks> {
        let ok = network.len() <= 200
            && network
                .bytes()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && network
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c));
        if !ok {
            return Err(Error::Convert(format!(
                "--net {network:?}: network names are letters, digits and _.-"
            )));
        }
        if !root.is_absolute() {
            return Err(Error::Convert(format!(
                "--net-root {}: must be an absolute path",
                root.display()
            )));
        }
        let beside = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(|d| d.join("carte")));
        let in_path = std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("carte"))
                .find(|c| c.is_file())
        });
        let carte = beside.filter(|c| c.is_file()).or(in_path).ok_or_else(|| {
            Error::Convert("--net: no `carte` binary next to carte-bundle or in PATH".into())
        })?;
        Ok(NetHooks {
            network,
            carte,
            root,
        })
    }

    fn hook(&self, action: &str) -> Value {
        json!({
            "path": self.carte,
            "args": ["carte", "--root", self.root, "net", action, self.network],
            "env": [spec::DEFAULT_PATH],
            "timeout": 120
        })
    }

    /// Add the createRuntime/poststop hooks (and a network namespace, already in the default spec).
    fn apply(&self, out: &mut Value) {
        if let Some(ns) = out["linux"]["namespaces"].as_array_mut() {
            if !ns.iter().any(|n| n["type"] == "network") {
                ns.push(json!({"type": "network"}));
            }
        }
        out["hooks"] = json!({
            "createRuntime": [self.hook("add")],
            "poststop": [self.hook("del")],
        });
    }
}

fn var_name(kv: &str) -> &str {
    kv.split_once('=').map_or(kv, |(k, _)| k)
}

/// Set `kv` in `env`, replacing a variable of the same name.
fn set_env(env: &mut Vec<String>, kv: String) {
    match env.iter_mut().find(|e| var_name(e) == var_name(&kv)) {
        Some(slot) => *slot = kv,
        None => env.push(kv),
    }
}

fn maps_json(maps: &[IdMap]) -> Value {
    Value::Array(
        maps.iter()
            .map(|m| json!({"containerID": m.container, "hostID": m.host, "size": m.size}))
            .collect(),
    )
}

/// `process.args` = Entrypoint + Cmd (`--args` replacing Cmd), refusing what cannot run.
/// Called before any layer is applied, so a hopeless image fails without writing anything.
pub fn process_args(img: &Image, opts: &ConvertOptions) -> Result<Vec<String>> {
    let cfg = &img.config;
    if !cfg.os.is_empty() && cfg.os != "linux" {
        return Err(Error::Convert(format!(
            "image os is `{}`, only linux images can run",
            cfg.os
        )));
    }
    if opts.net.is_some() && opts.rootless {
        return Err(Error::Convert(
            "--net needs root (CNI plugins configure the host): drop --rootless".into(),
        ));
    }
    let exec = cfg.config.clone().unwrap_or_default();
    let mut args = exec.entrypoint.unwrap_or_default();
    args.extend(opts.args.clone().or(exec.cmd).unwrap_or_default());
    if args.is_empty() {
        return Err(Error::Convert(
            "the image has neither Entrypoint nor Cmd; give the command with --args".into(),
        ));
    }
    Ok(args)
}

/// Build config.json for `img`, whose layers are already applied to `rootfs` (needed for `User`).
pub fn runtime_config(img: &Image, rootfs: &Root, opts: &ConvertOptions) -> Result<Value> {
    let exec = img.config.config.clone().unwrap_or_default();
    let args = process_args(img, opts)?;
    let euid = nix::unistd::geteuid().as_raw();
    let egid = nix::unistd::getegid().as_raw();
    let mut out = spec::default_spec(opts.rootless, euid, egid);
    // An unpacked image is a private copy: a writable root lets programs write /tmp, /var/run… as under Docker.
    out["root"]["readonly"] = json!(false);

    let user = passwd::resolve(rootfs, exec.user.as_deref().unwrap_or(""))?;
    let mut env: Vec<String> = exec.env.clone().unwrap_or_default();
    // conversion.md: a converter may add variables but should not add names the image already has.
    if !env.iter().any(|e| var_name(e) == "PATH") {
        env.insert(0, spec::DEFAULT_PATH.to_string());
    }
    if let Some(home) = &user.home {
        if !env.iter().any(|e| var_name(e) == "HOME") {
            env.push(format!("HOME={home}"));
        }
    }
    if opts.terminal && !env.iter().any(|e| var_name(e) == "TERM") {
        env.push("TERM=xterm".into());
    }
    for kv in &opts.env {
        set_env(&mut env, kv.clone());
    }
    let cwd = match exec.working_dir.as_deref() {
        None | Some("") => "/".to_string(),
        Some(d) if d.starts_with('/') => d.to_string(),
        Some(d) => format!("/{d}"),
    };
    let mut user_json = json!({"uid": user.uid, "gid": user.gid});
    if !user.additional_gids.is_empty() {
        user_json["additionalGids"] = json!(user.additional_gids);
    }
    let p = &mut out["process"];
    p["terminal"] = json!(opts.terminal);
    p["args"] = json!(args);
    p["env"] = json!(env);
    p["cwd"] = json!(cwd);
    p["user"] = user_json;

    // Explicit id maps replace runc's one-id rootless mapping (and give a root user a user namespace).
    if !opts.uid_map.is_empty() || !opts.gid_map.is_empty() {
        let linux = &mut out["linux"];
        if let Some(ns) = linux["namespaces"].as_array_mut() {
            if !ns.iter().any(|n| n["type"] == "user") {
                ns.push(json!({"type": "user"}));
            }
        }
        let uid_map = if opts.uid_map.is_empty() {
            vec![IdMap {
                container: 0,
                host: euid,
                size: 1,
            }]
        } else {
            opts.uid_map.clone()
        };
        let gid_map = if opts.gid_map.is_empty() {
            vec![IdMap {
                container: 0,
                host: egid,
                size: 1,
            }]
        } else {
            opts.gid_map.clone()
        };
        linux["uidMappings"] = maps_json(&uid_map);
        linux["gidMappings"] = maps_json(&gid_map);
    }

    // Volumes: a tmpfs at each path so data does not land in the rootfs (as umoci does).
    if let Some(vols) = &exec.volumes {
        if let Some(mounts) = out["mounts"].as_array_mut() {
            for v in vols.keys() {
                mounts.push(json!({"destination": v, "type": "tmpfs", "source": "tmpfs", "options": ["rw", "nosuid", "nodev", "relatime", "mode=755"]}));
            }
        }
    }
    if let Some(net) = &opts.net {
        net.apply(&mut out);
    }
    out["annotations"] = Value::Object(annotations(img, &exec));
    Ok(out)
}

/// conversion.md's implicit annotations, then the image's Labels (which win on conflict).
fn annotations(img: &Image, exec: &crate::image::ExecConfig) -> Map<String, Value> {
    let cfg = &img.config;
    let mut a = Map::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            a.insert(k.to_string(), json!(v));
        }
    };
    put("org.opencontainers.image.os", Some(cfg.os.clone()));
    put(
        "org.opencontainers.image.architecture",
        Some(cfg.architecture.clone()),
    );
    put("org.opencontainers.image.variant", cfg.variant.clone());
    put(
        "org.opencontainers.image.os.version",
        cfg.os_version.clone(),
    );
    put(
        "org.opencontainers.image.os.features",
        cfg.os_features.as_ref().map(|f| f.join(",")),
    );
    put("org.opencontainers.image.author", cfg.author.clone());
    put("org.opencontainers.image.created", cfg.created.clone());
    put(
        "org.opencontainers.image.stopSignal",
        exec.stop_signal.clone(),
    );
    put(
        "org.opencontainers.image.exposedPorts",
        exec.exposed_ports
            .as_ref()
            .map(|p| p.keys().cloned().collect::<Vec<_>>().join(",")),
    );
    put(
        "org.opencontainers.image.ref.name",
        img.names.first().cloned(),
    );
    put(
        "dev.carte.image.manifest-digest",
        img.manifest_digest.clone(),
    );
    put(
        "dev.carte.image.config-digest",
        Some(img.config_digest.clone()),
    );
    for (k, v) in exec.labels.iter().flatten() {
        a.insert(k.clone(), json!(v));
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_override() {
        let mut env = vec!["PATH=/bin".to_string(), "A=1".to_string()];
        set_env(&mut env, "A=2".into());
        set_env(&mut env, "B=3".into());
        assert_eq!(env, ["PATH=/bin", "A=2", "B=3"]);
    }
}
