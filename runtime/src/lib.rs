//! carte as a library: the runtime's modules, for the `carte` binary, the fuzz targets and tests.
//! Nothing here is a stable API; the command line is.

pub mod bundle;
pub mod caps;
pub mod cgroups;
pub mod cli;
pub mod criu;
pub mod devfilter;
pub mod error;
pub mod hooks;
pub mod idmap;
pub mod kernel_text;
pub mod keyring;
pub mod log;
pub mod lsm;
pub mod mountinfo;
pub mod namespaces;
pub mod net;
pub mod proc_attrs;
pub mod proc_stat;
pub mod process;
pub mod procfs;
pub mod rootfs;
pub mod rootless;
pub mod seccomp;
pub mod selfexe;
pub mod signals;
pub mod state;
pub mod subcgroup;
pub mod sys;
pub mod sysctl;
pub mod teardown;
pub mod tty;
pub mod validate;
pub mod verbs;
pub mod wait;
