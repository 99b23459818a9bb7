//! `carte ps`: the container's processes, as host pids (json, what containerd reads) or through
//! ps(1) filtered to the container's pids (table).

use crate::cli::{Cli, PsArgs};
use crate::error::{Context, Error, Result};
use crate::state::ContainerDir;

pub fn run(cli: &Cli, a: &PsArgs) -> Result<i32> {
    let dir = ContainerDir::open(&cli.root, &a.id)?;
    let st = super::load(&dir)?;
    drop(dir);
    let mut pids = match st.cgroup_path.as_os_str().is_empty() {
        // Without a cgroup (rootless): the init's pid namespace, while the init lives.
        true if !crate::state::init_alive(&st) => vec![],
        _ => crate::rootless::container_pids(
            &crate::cgroups::fs_path(&st.cgroup_path, st.systemd_cgroup),
            st.pid,
        ),
    };
    pids.sort_unstable();
    if a.format == "json" {
        super::out(format!("{}", serde_json::Value::from(pids)));
        return Ok(0);
    }
    let args = if a.ps_args.is_empty() {
        vec!["-ef".to_string()]
    } else {
        a.ps_args.clone()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .ctx("run", "ps")?;
    if !out.status.success() {
        return Err(Error::Other(format!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| Error::Other("ps: no PID column in its output".into()))?;
    super::out(header);
    for l in lines {
        if let Some(pid) = l
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok())
        {
            if pids.contains(&pid) {
                super::out(l);
            }
        }
    }
    Ok(0)
}
