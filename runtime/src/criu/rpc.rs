//! The few messages of criu's RPC (`images/rpc.proto`, protobuf 2) carte sends and reads, encoded
//! by hand: a request is a type, a handful of `criu_opts` fields (everything else travels in the
//! RPC configuration file, see `mod.rs`) and the answer to a notification; a response is read
//! for its type, success, restored pid, notification and criu's error. Twelve fields do not earn
//! `prost` and a protobuf compiler in the build.

/// `criu_req_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReqType {
    Dump = 1,
    Restore = 2,
    PreDump = 4,
    Notify = 6,
}

/// What carte sets in `criu_opts` over RPC (field numbers of rpc.proto).
#[derive(Clone, Debug, Default)]
pub struct Opts {
    /// `images_dir_fd` (1, required): an fd of the requesting process.
    pub images_dir_fd: i32,
    /// `pid` (2): the tree to dump; without it criu dumps the requesting process.
    pub pid: Option<i32>,
    /// `log_level` (9) and `log_file` (10, a name in the work directory).
    pub log_level: i32,
    pub log_file: String,
    /// `notify_scripts` (12): criu stops at each action script and waits for our answer.
    pub notify_scripts: bool,
    /// `rst_sibling` (26, swrk only): the restored tree's root becomes criu's sibling, our child.
    pub rst_sibling: bool,
    /// `orphan_pts_master` (50): a pty whose master is outside the tree is allowed at dump, and
    /// its new master is sent to us at restore.
    pub orphan_pts_master: bool,
    /// `config_file` (51): read after the RPC options, overriding them.
    pub config_file: String,
    /// The list options, which criu 4.1 would take twice from the configuration file (it reads
    /// that file twice; a second `inherit-fd` of one fd fails): `ext_mnt` (23: key, val),
    /// `cg_root` (25: ctrl, path), `inherit_fd` (27: key, fd), `external` (37) and `join_ns`
    /// (39: ns, ns_file).
    pub ext_mnt: Vec<(String, String)>,
    pub cg_root: Vec<(Option<String>, String)>,
    pub inherit_fd: Vec<(String, i32)>,
    pub external: Vec<String>,
    pub join_ns: Vec<(String, String)>,
}

/// A decoded `criu_resp`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Resp {
    pub typ: u64,
    pub success: bool,
    /// `restore.pid`: the restored tree's root.
    pub restored_pid: Option<i32>,
    /// `notify.script` and `notify.pid`.
    pub notify: Option<(String, Option<i32>)>,
    pub cr_errno: Option<i32>,
    pub cr_errmsg: Option<String>,
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u64, wire: u64) {
    varint(out, field << 3 | wire);
}

/// An int32 or bool field; a negative int32 is sign-extended to ten bytes, as protobuf wants.
fn int(out: &mut Vec<u8>, field: u64, v: i64) {
    key(out, field, 0);
    varint(out, v as u64);
}

fn bytes(out: &mut Vec<u8>, field: u64, b: &[u8]) {
    key(out, field, 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

impl Opts {
    fn encode(&self) -> Vec<u8> {
        let mut o = vec![];
        int(&mut o, 1, self.images_dir_fd.into());
        if let Some(p) = self.pid {
            int(&mut o, 2, p.into());
        }
        int(&mut o, 9, self.log_level.into());
        bytes(&mut o, 10, self.log_file.as_bytes());
        for (k, v) in &self.ext_mnt {
            let mut m = vec![];
            bytes(&mut m, 1, k.as_bytes());
            bytes(&mut m, 2, v.as_bytes());
            bytes(&mut o, 23, &m);
        }
        for (ctrl, path) in &self.cg_root {
            let mut m = vec![];
            if let Some(c) = ctrl {
                bytes(&mut m, 1, c.as_bytes());
            }
            bytes(&mut m, 2, path.as_bytes());
            bytes(&mut o, 25, &m);
        }
        if self.rst_sibling {
            int(&mut o, 26, 1);
        }
        for (k, fd) in &self.inherit_fd {
            let mut m = vec![];
            bytes(&mut m, 1, k.as_bytes());
            int(&mut m, 2, (*fd).into());
            bytes(&mut o, 27, &m);
        }
        for e in &self.external {
            bytes(&mut o, 37, e.as_bytes());
        }
        for (ns, file) in &self.join_ns {
            let mut m = vec![];
            bytes(&mut m, 1, ns.as_bytes());
            bytes(&mut m, 2, file.as_bytes());
            bytes(&mut o, 39, &m);
        }
        if self.notify_scripts {
            int(&mut o, 12, 1);
        }
        if self.orphan_pts_master {
            int(&mut o, 50, 1);
        }
        bytes(&mut o, 51, self.config_file.as_bytes());
        o
    }
}

/// A `criu_req` of this type with these options.
pub fn request(typ: ReqType, opts: &Opts) -> Vec<u8> {
    let mut r = vec![];
    int(&mut r, 1, typ as i64);
    bytes(&mut r, 2, &opts.encode());
    r
}

/// The answer to a notification: `criu_req{type: NOTIFY, notify_success}` (false fails criu).
pub fn notify_reply(ok: bool) -> Vec<u8> {
    let mut r = vec![];
    int(&mut r, 1, ReqType::Notify as i64);
    int(&mut r, 3, ok.into());
    r
}

/// One field of a message: its number and its varint or its bytes.
enum Val<'a> {
    Int(u64),
    Bytes(&'a [u8]),
}

fn read_varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The fields of a message, in order; None when it is malformed.
fn fields(b: &[u8]) -> Option<Vec<(u64, Val<'_>)>> {
    let mut at = 0;
    let mut out = vec![];
    while at < b.len() {
        let k = read_varint(b, &mut at)?;
        let v = match k & 7 {
            0 => Val::Int(read_varint(b, &mut at)?),
            1 => {
                at += 8;
                Val::Int(0)
            }
            2 => {
                let n = usize::try_from(read_varint(b, &mut at)?).ok()?;
                let s = b.get(at..at.checked_add(n)?)?;
                at += n;
                Val::Bytes(s)
            }
            5 => {
                at += 4;
                Val::Int(0)
            }
            _ => return None,
        };
        out.push((k >> 3, v));
    }
    (at == b.len()).then_some(out)
}

fn as_i32(v: &Val) -> Option<i32> {
    match v {
        Val::Int(i) => Some(*i as i32),
        Val::Bytes(_) => None,
    }
}

fn as_string(v: &Val) -> Option<String> {
    match v {
        Val::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Val::Int(_) => None,
    }
}

/// Decode a `criu_resp`; None when it is malformed.
pub fn response(b: &[u8]) -> Option<Resp> {
    let mut r = Resp::default();
    for (n, v) in fields(b)? {
        match (n, &v) {
            (1, Val::Int(t)) => r.typ = *t,
            (2, Val::Int(s)) => r.success = *s != 0,
            (4, Val::Bytes(m)) => {
                r.restored_pid = fields(m)?
                    .iter()
                    .find(|f| f.0 == 1)
                    .and_then(|f| as_i32(&f.1))
            }
            (5, Val::Bytes(m)) => {
                let f = fields(m)?;
                let script = f.iter().find(|f| f.0 == 1).and_then(|f| as_string(&f.1));
                let pid = f.iter().find(|f| f.0 == 2).and_then(|f| as_i32(&f.1));
                r.notify = Some((script.unwrap_or_default(), pid));
            }
            (7, _) => r.cr_errno = as_i32(&v),
            (9, _) => r.cr_errmsg = as_string(&v),
            _ => {}
        }
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_encodes_as_protobuf() {
        let o = Opts {
            images_dir_fd: -1,
            pid: Some(300),
            log_level: 4,
            log_file: "d".into(),
            notify_scripts: true,
            rst_sibling: true,
            orphan_pts_master: true,
            config_file: "/c".into(),
            ext_mnt: vec![("/a".into(), "/b".into())],
            cg_root: vec![(None, "/c".into()), (Some("x".into()), "/y".into())],
            inherit_fd: vec![("k".into(), 5)],
            external: vec!["e".into()],
            join_ns: vec![("ipc".into(), "/p".into())],
        };
        let r = request(ReqType::Dump, &o);
        let mut want = vec![0x08, 1, 0x12];
        let inner = [
            &[0x08][..],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            &[0x10, 0xac, 0x02],
            &[0x48, 4],
            &[0x52, 1, b'd'],
            &[0xba, 0x01, 8, 0x0a, 2, b'/', b'a', 0x12, 2, b'/', b'b'],
            &[0xca, 0x01, 4, 0x12, 2, b'/', b'c'],
            &[0xca, 0x01, 7, 0x0a, 1, b'x', 0x12, 2, b'/', b'y'],
            &[0xd0, 0x01, 1],
            &[0xda, 0x01, 5, 0x0a, 1, b'k', 0x10, 5],
            &[0xaa, 0x02, 1, b'e'],
            &[
                0xba, 0x02, 9, 0x0a, 3, b'i', b'p', b'c', 0x12, 2, b'/', b'p',
            ],
            &[0x60, 1],
            &[0x90, 0x03, 1],
            &[0x9a, 0x03, 2, b'/', b'c'],
        ]
        .concat();
        want.push(inner.len() as u8);
        want.extend_from_slice(&inner);
        assert_eq!(r, want);
        assert_eq!(notify_reply(true), vec![0x08, 6, 0x18, 1]);
    }

    #[test]
    fn responses_decode() {
        // type NOTIFY, success, notify{script "setup-namespaces", pid 77}
        let mut n = vec![0x0a, 16];
        n.extend_from_slice(b"setup-namespaces");
        n.extend_from_slice(&[0x10, 77]);
        let mut b = vec![0x08, 6, 0x10, 1, 0x2a, n.len() as u8];
        b.extend_from_slice(&n);
        let r = response(&b).unwrap();
        assert_eq!(r.notify, Some(("setup-namespaces".into(), Some(77))));
        assert!(r.success);
        // type RESTORE, success, restore{pid 1234}
        let r = response(&[0x08, 2, 0x10, 1, 0x22, 3, 0x08, 0xd2, 0x09]).unwrap();
        assert_eq!(r.restored_pid, Some(1234));
        // a failure with criu's message
        let r = response(&[0x08, 1, 0x10, 0, 0x38, 2, 0x4a, 2, b'n', b'o']).unwrap();
        assert!(!r.success);
        assert_eq!((r.cr_errno, r.cr_errmsg.as_deref()), (Some(2), Some("no")));
        assert!(response(&[0x0a, 5, 1]).is_none());
    }
}
