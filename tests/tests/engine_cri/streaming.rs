//! Streaming Exec, Attach and PortForward through containerd's streaming server.

use carte_tests::engines::cri::{spec, stream, Cri};
use carte_tests::engines::Rt;
use k8s_cri::v1 as cri;

/// The final status of an exec/attach stream (channel 3): `Success`, or the exit code of `NonZeroExitCode`.
fn stream_exit(s: &stream::Session) -> Option<i64> {
    let v: serde_json::Value = serde_json::from_str(&s.text(3)).ok()?;
    match v["status"].as_str()? {
        "Success" => Some(0),
        _ => v["details"]["causes"]
            .as_array()?
            .iter()
            .find(|c| c["reason"] == "ExitCode")?["message"]
            .as_str()?
            .parse()
            .ok(),
    }
}

/// Streaming Exec through containerd's streaming server (what `kubectl exec` reaches): stdout and stderr on
/// their channels and the exit code in the final status; with stdin, what is sent reaches the process.
pub fn exec_stream(rt: Rt) {
    let Some(t) = Cri::new(rt) else { return };
    let pod = t.run_pod(t.pod_config("execst"));
    let id = t.start(&pod, spec::sleeper("c"));
    let exec = |cmd: &[&str], stdin: bool| {
        let req = cri::ExecRequest {
            container_id: id.clone(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            stdin,
            stdout: true,
            stderr: true,
            tty: false,
        };
        match t.d.block("Exec", t.d.client().exec(req)) {
            Ok(r) => r.url,
            Err(e) => panic!("Exec: {e}"),
        }
    };
    let url = exec(&["sh", "-c", "echo ex-out; echo ex-err >&2; exit 4"], false);
    let s = stream::session(t.d.pid(), &url, vec![], |_| false);
    let s = s.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (s.text(1).as_str(), s.text(2).as_str()),
        ("ex-out\n", "ex-err\n"),
        "{s:?}"
    );
    assert_eq!(stream_exit(&s), Some(4), "{s:?}");
    let url = exec(&["sh", "-c", "read l; echo got-$l"], true);
    let s = stream::session(t.d.pid(), &url, vec![(0, b"ping\n".to_vec())], |_| false);
    let s = s.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.text(1), "got-ping\n", "{s:?}");
    assert_eq!(stream_exit(&s), Some(0), "{s:?}");
}

/// Streaming Exec with a terminal (`kubectl exec -it`): the process gets a pty from the runtime's console
/// socket, and a resize sent on channel 4 reaches it.
pub fn exec_tty(rt: Rt) {
    let Some(t) = Cri::new(rt) else { return };
    let pod = t.run_pod(t.pod_config("exectty"));
    let id = t.start(&pod, spec::sleeper("c"));
    let script =
        "test -t 0 && test -t 1 && echo is-a-tty; for i in $(seq 100); do s=$(stty size); \
                  [ \"$s\" = '30 100' ] && break; sleep 0.1; done; echo size=$s; exit 3";
    let req = cri::ExecRequest {
        container_id: id.clone(),
        cmd: vec!["sh".into(), "-c".into(), script.into()],
        stdin: true,
        stdout: true,
        stderr: false,
        tty: true,
    };
    let url = match t.d.block("Exec", t.d.client().exec(req)) {
        Ok(r) => r.url,
        Err(e) => panic!("Exec: {e}"),
    };
    let resize = br#"{"Width":100,"Height":30}"#.to_vec();
    let s = stream::session(t.d.pid(), &url, vec![(4, resize)], |_| false);
    let s = s.unwrap_or_else(|e| panic!("{e}"));
    let out = s.text(1);
    assert!(
        out.contains("is-a-tty") && out.contains("size=30 100"),
        "{s:?}"
    );
    assert_eq!(stream_exit(&s), Some(3), "{s:?}");
}

/// Attach (what `kubectl attach -i` reaches) to a container started with stdin: a line sent reaches its
/// pid 1, its output comes back, and it exits with its own code.
pub fn attach(rt: Rt) {
    let Some(t) = Cri::new(rt) else { return };
    let pod = t.run_pod(t.pod_config("attach"));
    let mut c = spec::container(
        "c",
        &["sh", "-c", "echo ready; read l; echo got-$l; exit 7"],
    );
    c.stdin = true;
    c.stdin_once = true;
    let id = t.start(&pod, c);
    let req = cri::AttachRequest {
        container_id: id.clone(),
        stdin: true,
        stdout: true,
        stderr: true,
        tty: false,
    };
    let url = match t.d.block("Attach", t.d.client().attach(req)) {
        Ok(r) => r.url,
        Err(e) => panic!("Attach: {e}"),
    };
    let s = stream::session(t.d.pid(), &url, vec![(0, b"pong\n".to_vec())], |s| {
        s.text(1).contains("got-pong")
    });
    let s = s.unwrap_or_else(|e| panic!("{e}"));
    assert!(s.text(1).contains("got-pong"), "{s:?}");
    let st = t.wait_exited(&id);
    assert_eq!(st.exit_code, 7, "{st:?}");
    let log = std::path::Path::new(&pod.config.log_directory).join("c.log");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("got-pong"), "{log:?}: {text}");
}

/// A container with a terminal (`kubectl run -it`): the runtime hands its pty to the shim through the console
/// socket; Attach with a terminal carries a line in and the answer out, and the exit code is the container's.
pub fn attach_tty(rt: Rt) {
    let Some(t) = Cri::new(rt) else { return };
    let pod = t.run_pod(t.pod_config("attachtty"));
    let mut c = spec::container(
        "c",
        &[
            "sh",
            "-c",
            "test -t 0 && echo is-a-tty; read l; echo got-$l; exit 9",
        ],
    );
    c.stdin = true;
    c.stdin_once = true;
    c.tty = true;
    let id = t.start(&pod, c);
    let req = cri::AttachRequest {
        container_id: id.clone(),
        stdin: true,
        stdout: true,
        stderr: false,
        tty: true,
    };
    let url = match t.d.block("Attach", t.d.client().attach(req)) {
        Ok(r) => r.url,
        Err(e) => panic!("Attach: {e}"),
    };
    let s = stream::session(t.d.pid(), &url, vec![(0, b"tty-line\r".to_vec())], |s| {
        s.text(1).contains("got-tty-line")
    });
    let s = s.unwrap_or_else(|e| panic!("{e}"));
    assert!(s.text(1).contains("got-tty-line"), "{s:?}");
    let st = t.wait_exited(&id);
    assert_eq!(st.exit_code, 9, "{st:?}");
    let log = std::path::Path::new(&pod.config.log_directory).join("c.log");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("is-a-tty"), "{log:?}: {text}");
}

/// PortForward (what `kubectl port-forward` reaches): an HTTP request sent on the data channel reaches a
/// server listening on the pod's port and its answer comes back.
pub fn port_forward(rt: Rt) {
    let Some(t) = Cri::new(rt) else { return };
    let pod = t.run_pod(t.pod_config("portfwd"));
    let web = t.start(
        &pod,
        spec::container(
            "web",
            &[
                "sh",
                "-c",
                "echo forwarded-hello >/tmp/index.html; exec httpd -f -p 8080 -h /tmp",
            ],
        ),
    );
    // The server must listen before the stream dials it.
    t.sh(
        &web,
        "for i in $(seq 50); do netstat -ltn | grep -q ':8080 ' && exit 0; sleep 0.1; done; exit 1",
    );
    let req = cri::PortForwardRequest {
        pod_sandbox_id: pod.id.clone(),
        port: vec![8080],
    };
    let url = match t.d.block("PortForward", t.d.client().port_forward(req)) {
        Ok(r) => r.url,
        Err(e) => panic!("PortForward: {e}"),
    };
    let http = b"GET /index.html HTTP/1.0\r\nHost: pod\r\n\r\n".to_vec();
    let s = stream::session(
        t.d.pid(),
        &format!("{url}?port=8080"),
        vec![(0, http)],
        |s| s.text(0).contains("forwarded-hello"),
    );
    let s = s.unwrap_or_else(|e| panic!("{e}"));
    // Each channel opens with the port, little-endian.
    let data = s.channels.first().cloned().unwrap_or_default();
    assert_eq!(data.get(..2), Some(&8080u16.to_le_bytes()[..]), "{s:?}");
    assert!(s.text(0).contains("200 OK"), "{s:?}");
}
