//! spec → `Plan`: everything that can fail without touching the system is computed here, in the
//! parent, before clone — namespaces opened, capabilities parsed, seccomp compiled, rlimits and
//! the exec strings prepared. The init only applies the plan.

use crate::caps::{self, CapPlan};
use crate::error::{Error, Result};
use crate::namespaces::{self, NsPlan};
use crate::proc_attrs;
use crate::seccomp::{self, Compiled};
use oci_spec::runtime::{Process, Spec};
use std::ffi::CString;
use std::path::PathBuf;

/// Everything about the container: its namespaces and the setup only an init does.
pub struct Plan {
    pub ns: NsPlan,
    pub proc: ProcPlan,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub sysctl: Vec<(crate::sysctl::Key, String)>,
}

/// Everything about the process to run — the same for a container's init and an `exec`.
pub struct ProcPlan {
    pub caps: CapPlan,
    pub seccomp: Option<Compiled>,
    pub rlimits: Vec<(libc::c_int, u64, u64, String)>,
    pub args: Vec<String>,
    pub argv: Vec<CString>,
    pub env: Vec<String>,
    pub envp: Vec<CString>,
    pub needs_home: bool,
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: Option<u32>,
    pub no_new_privs: bool,
    pub terminal: bool,
    pub console_size: Option<(u16, u16)>,
    pub personality: Option<libc::c_ulong>,
    pub ioprio: Option<(i64, i64)>,
    pub sched: Option<crate::sys::SchedAttr>,
    /// `execCPUAffinity` (exec only; the spec says it does not apply to the init): the CPUs
    /// `carte exec` runs on before the cgroup move, and those the process gets after it.
    pub exec_cpus_initial: Option<nix::sched::CpuSet>,
    pub exec_cpus_final: Option<nix::sched::CpuSet>,
    /// AppArmor profile and SELinux label, set on exec.
    pub labels: crate::lsm::Labels,
}

fn cstrings(v: &[String], field: &str) -> Result<Vec<CString>> {
    v.iter()
        .enumerate()
        .map(|(i, s)| {
            CString::new(s.as_bytes())
                .map_err(|_| Error::spec(format!("{field}[{i}]"), "contains a NUL byte"))
        })
        .collect()
}

pub fn process_of(spec: &Spec) -> Result<&Process> {
    spec.process()
        .as_ref()
        .ok_or_else(|| Error::spec("process", "missing: nothing to run"))
}

pub fn build(spec: &Spec) -> Result<Plan> {
    let p = process_of(spec)?;
    let linux = spec.linux().as_ref();
    Ok(Plan {
        ns: namespaces::plan(spec)?,
        proc: build_process(p, linux)?,
        hostname: spec.hostname().clone(),
        domainname: spec.domainname().clone(),
        sysctl: crate::sysctl::plan(spec)?,
    })
}

/// The process part of the plan; `linux` gives the container's seccomp and personality.
pub fn build_process(p: &Process, linux: Option<&oci_spec::runtime::Linux>) -> Result<ProcPlan> {
    let args = p.args().clone().unwrap_or_default();
    if args.is_empty() {
        return Err(Error::spec("process.args", "must name a program to run"));
    }
    let env = p.env().clone().unwrap_or_default();
    let mut rlimits = vec![];
    for r in p.rlimits().as_deref().unwrap_or_default() {
        if r.soft() > r.hard() {
            return Err(Error::spec(
                "process.rlimits",
                format!(
                    "{:?}: soft limit {} is above hard limit {}",
                    r.typ(),
                    r.soft(),
                    r.hard()
                ),
            ));
        }
        rlimits.push((
            proc_attrs::rlimit_resource(r.typ()),
            r.soft(),
            r.hard(),
            format!("{:?}", r.typ()),
        ));
    }
    let seccomp = match linux.and_then(|l| l.seccomp().as_ref()) {
        Some(s) => {
            let c = seccomp::compile(s).map_err(|e| Error::spec("linux.seccomp", e.to_string()))?;
            for n in c.notes() {
                log::debug!("seccomp: {n}");
            }
            log::debug!(
                "seccomp: compiled {} filters ({:?} instructions)",
                c.instruction_counts().len(),
                c.instruction_counts()
            );
            if let Some(l) = c.listener() {
                log::debug!(
                    "seccomp: SCMP_ACT_NOTIFY rules in a listener filter, for the agent at {}",
                    l.path.display()
                );
            }
            Some(c)
        }
        None => None,
    };
    let caps = caps::plan(p.capabilities().as_ref())
        .map_err(|e| Error::spec("process.capabilities", e.to_string()))?;
    // runc, too, warns of what it leaves out ("ignoring unknown or unavailable capabilities").
    for w in caps.warnings() {
        log::warn!("{w}");
    }
    for n in caps.notes() {
        log::debug!("{n}");
    }
    let user = p.user();
    let personality = linux.and_then(|l| l.personality().as_ref()).map(|pe| {
        use oci_spec::runtime::LinuxPersonalityDomain as D;
        match pe.domain() {
            D::PerLinux => 0x0000,
            D::PerLinux32 => 0x0008,
        }
    });
    let ioprio = match p.io_priority() {
        Some(io) => {
            use oci_spec::runtime::IOPriorityClass as C;
            let class = match io.class() {
                C::IoprioClassRt => 1,
                C::IoprioClassBe => 2,
                C::IoprioClassIdle => 3,
            };
            if !(0..=7).contains(&io.priority()) {
                return Err(Error::spec(
                    "process.ioPriority.priority",
                    format!("{} is not in 0..7", io.priority()),
                ));
            }
            Some((class, io.priority()))
        }
        None => None,
    };
    let affinity = p.exec_cpu_affinity().as_ref();
    Ok(ProcPlan {
        labels: crate::lsm::labels_of(p)?,
        exec_cpus_initial: affinity
            .and_then(|a| a.initial().as_deref())
            .map(|l| cpu_list(l, "process.execCPUAffinity.initial"))
            .transpose()?,
        exec_cpus_final: affinity
            .and_then(|a| a.cpu_affinity_final().as_deref())
            .map(|l| cpu_list(l, "process.execCPUAffinity.final"))
            .transpose()?,
        personality,
        ioprio,
        sched: p.scheduler().as_ref().map(sched_attr).transpose()?,
        caps,
        seccomp,
        rlimits,
        argv: cstrings(&args, "process.args")?,
        args,
        envp: cstrings(&env, "process.env")?,
        // Filled in by the init from the container's /etc/passwd, as runc does.
        needs_home: !env.iter().any(|e| e.starts_with("HOME=")),
        env,
        cwd: p.cwd().clone(),
        uid: user.uid(),
        gid: user.gid(),
        additional_gids: user.additional_gids().clone().unwrap_or_default(),
        umask: user.umask(),
        no_new_privs: p.no_new_privileges().unwrap_or(false),
        terminal: p.terminal().unwrap_or(false),
        console_size: p
            .console_size()
            .map(|b| (b.height() as u16, b.width() as u16)),
    })
}

/// A CPU list as the kernel prints it (`0-3,7`) as an affinity mask.
fn cpu_list(list: &str, field: &str) -> Result<nix::sched::CpuSet> {
    let mut set = nix::sched::CpuSet::new();
    let bad = |why: String| Error::spec(field, format!("{list:?}: {why}"));
    for part in list.split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (usize, usize) = match (a.trim().parse(), b.trim().parse()) {
            (Ok(a), Ok(b)) if a <= b => (a, b),
            _ => return Err(bad(format!("`{part}` is not a CPU number or range"))),
        };
        for cpu in a..=b {
            set.set(cpu).map_err(|_| {
                bad(format!(
                    "CPU {cpu} is beyond {}",
                    nix::sched::CpuSet::count()
                ))
            })?;
        }
    }
    Ok(set)
}

fn sched_attr(s: &oci_spec::runtime::Scheduler) -> Result<crate::sys::SchedAttr> {
    use oci_spec::runtime::{LinuxSchedulerFlag as F, LinuxSchedulerPolicy as P};
    let policy = match s.policy() {
        P::SchedOther => 0,
        P::SchedFifo => 1,
        P::SchedRr => 2,
        P::SchedBatch => 3,
        P::SchedIso => 4,
        P::SchedIdle => 5,
        P::SchedDeadline => 6,
    };
    let mut flags = 0u64;
    for f in s.flags().as_deref().unwrap_or_default() {
        flags |= match f {
            F::SchedResetOnFork => 0x01,
            F::SchedFlagReclaim => 0x02,
            F::SchedFlagDLOverrun => 0x04,
            F::SchedFlagKeepPolicy => 0x08,
            F::SchedFlagKeepParams => 0x10,
            F::SchedFlagUtilClampMin => 0x20,
            F::SchedFlagUtilClampMax => 0x40,
        };
    }
    let nice = s.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        return Err(Error::spec(
            "process.scheduler.nice",
            format!("{nice} is not in -20..19"),
        ));
    }
    Ok(crate::sys::SchedAttr {
        policy,
        flags,
        nice,
        priority: s.priority().unwrap_or(0).max(0) as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
        ..Default::default()
    })
}
