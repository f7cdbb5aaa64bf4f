//! Terminals: the console-socket protocol (as conmon / containerd's shim /
//! runc's recvtty receive it) for create and exec, and the foreground relay
//! of `run` through a real pty.

#![allow(clippy::unwrap_used)]

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
use serde_json::json;

use crate::common::*;
use crate::require_root;

/// Receives one fd the way recvtty does; returns it and the message data.
fn recv_fd(sock: RawFd) -> (OwnedFd, String) {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC).unwrap();
    let mut fd = None;
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(fds) = c {
            fd = fds.first().copied();
        }
    }
    let n = msg.bytes;
    let name = String::from_utf8_lossy(&buf[..n]).into_owned();
    // SAFETY: the kernel installed this fd for us.
    (
        unsafe { OwnedFd::from_raw_fd(fd.expect("an SCM_RIGHTS fd")) },
        name,
    )
}

/// Reads from `fd` until `needle` appears (bounded); returns all read.
fn read_until(fd: RawFd, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut out = Vec::new();
    while Instant::now() < deadline {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, 200) } <= 0 {
            continue;
        }
        let mut b = [0u8; 4096];
        // SAFETY: valid buffer.
        let n = unsafe { libc::read(fd, b.as_mut_ptr().cast(), b.len()) };
        if n <= 0 {
            break;
        }
        out.extend_from_slice(&b[..n as usize]);
        if String::from_utf8_lossy(&out).contains(needle) {
            break;
        }
    }
    let s = String::from_utf8_lossy(&out).into_owned();
    assert!(s.contains(needle), "did not see {needle:?} in: {s:?}");
    s
}

fn write(fd: RawFd, s: &str) {
    // SAFETY: a valid buffer of s.len() bytes.
    let n = unsafe { libc::write(fd, s.as_ptr().cast(), s.len()) };
    assert_eq!(n, s.len() as isize);
}

fn set_winsize(fd: RawFd, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: valid winsize.
    assert_eq!(unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) }, 0);
}

#[test]
fn create_console_socket_drives_a_shell() {
    require_root!();
    let ctx = Ctx::new("tty");
    let id = ctx.id("c");
    let sock = ctx.dir.path().join("console.sock");
    let l = UnixListener::bind(&sock).unwrap();
    let mut c = ctx.config(&["/bin/sh"]);
    c["process"]["terminal"] = json!(true);
    c["process"]["consoleSize"] = json!({"height": 30, "width": 100});
    let b = ctx.bundle("c", &c);
    assert_ok(
        &ctx.cuddy(&[
            "create",
            "--bundle",
            b.to_str().unwrap(),
            "--console-socket",
            sock.to_str().unwrap(),
            &id,
        ]),
        "create",
    );
    let (conn, _) = l.accept().unwrap();
    let (master, name) = recv_fd(conn.as_raw_fd());
    assert_eq!(name, "/dev/ptmx");
    assert_ok(&ctx.cuddy(&["start", &id]), "start");
    let m = master.as_raw_fd();
    write(
        m,
        "stty size; tty; [ -c /dev/console ] && echo CONSOLE-OK; echo MARK$((1+2))\n",
    );
    let out = read_until(m, "MARK3");
    assert!(out.contains("30 100"), "consoleSize applied: {out:?}");
    assert!(out.contains("/dev/pts/0"), "{out:?}");
    assert!(out.contains("CONSOLE-OK"), "/dev/console: {out:?}");
    set_winsize(m, 40, 120);
    write(m, "stty size; echo MARK$((2+2))\n");
    let out = read_until(m, "MARK4");
    assert!(out.contains("40 120"), "resize: {out:?}");
    write(m, "exit 3\n");
    wait_until("stopped", || ctx.state(&id)["status"] == "stopped");
    assert_ok(&ctx.cuddy(&["delete", &id]), "delete");
    ctx.assert_no_leftovers(&id);
}

#[test]
fn exec_tty_console_socket() {
    require_root!();
    let ctx = Ctx::new("ttyx");
    let id = ctx.id("x");
    let b = ctx.bundle("x", &ctx.config(&["/bin/sleep", "1000"]));
    assert_ok(
        &ctx.cuddy(&["create", "--bundle", b.to_str().unwrap(), &id]),
        "create",
    );
    assert_ok(&ctx.cuddy(&["start", &id]), "start");
    let sock = ctx.dir.path().join("exec.sock");
    let l = UnixListener::bind(&sock).unwrap();
    let out = ctx.cuddy(&[
        "exec",
        "-d",
        "-t",
        "--console-socket",
        sock.to_str().unwrap(),
        &id,
        "/bin/sh",
    ]);
    assert_ok(&out, "exec -d -t");
    let (conn, _) = l.accept().unwrap();
    let (master, _) = recv_fd(conn.as_raw_fd());
    let m = master.as_raw_fd();
    write(m, "tty; echo MARK$((1+4))\n");
    let out = read_until(m, "MARK5");
    assert!(out.contains("/dev/pts/"), "{out:?}");
    write(m, "exit\n");
    // Missing socket path: a clear error, the container is undisturbed.
    let out = ctx.cuddy(&[
        "exec",
        "-t",
        "--console-socket",
        "/nonexistent/sock",
        &id,
        "/bin/true",
    ]);
    assert_fails_with(&out, "console socket /nonexistent/sock");
    assert_eq!(ctx.state(&id)["status"], "running");
}

#[test]
fn create_terminal_without_socket_is_refused() {
    require_root!();
    let ctx = Ctx::new("ttyr");
    let id = ctx.id("r");
    let mut c = ctx.config(&["/bin/sh"]);
    c["process"]["terminal"] = json!(true);
    let b = ctx.bundle("r", &c);
    assert_fails_with(
        &ctx.cuddy(&["create", "--bundle", b.to_str().unwrap(), &id]),
        "no --console-socket",
    );
    ctx.assert_no_leftovers(&id);
    let out = ctx.cuddy(&[
        "create",
        "--bundle",
        b.to_str().unwrap(),
        "--console-socket",
        "/nonexistent/sock",
        &id,
    ]);
    assert_fails_with(&out, "console socket /nonexistent/sock");
    ctx.assert_no_leftovers(&id);
}

/// `run` with terminal: true in a real pty: cuddy relays, in raw mode, with
/// the caller's window size, and exits with the shell's status; the caller's
/// terminal mode is restored.
#[test]
fn run_relays_through_a_real_pty() {
    require_root!();
    let ctx = Ctx::new("ttyrun");
    let id = ctx.id("r");
    let mut c = ctx.config(&["/bin/sh"]);
    c["process"]["terminal"] = json!(true);
    let b = ctx.bundle("r", &c);
    let pty = nix::pty::openpty(None, None).unwrap();
    set_winsize(pty.slave.as_raw_fd(), 25, 90);
    let before = nix::sys::termios::tcgetattr(&pty.slave).unwrap();
    let mut cmd = ctx.cmd();
    cmd.args(["run", "--bundle", b.to_str().unwrap(), &id]);
    cmd.stdin(std::process::Stdio::from(pty.slave.try_clone().unwrap()));
    cmd.stdout(std::process::Stdio::from(pty.slave.try_clone().unwrap()));
    cmd.stderr(std::process::Stdio::from(pty.slave.try_clone().unwrap()));
    let mut child = cmd.spawn().unwrap();
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let guard = std::thread::spawn(move || {
        if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            // Hang guard: end the cuddy we started, by pid (still our
            // unreaped child, so the pid cannot have been reused).
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    });
    let m = pty.master.as_raw_fd();
    write(m, "stty size; echo MARK$((3+3))\n");
    let out = read_until(m, "MARK6");
    assert!(
        out.contains("25 90"),
        "window size from the caller: {out:?}"
    );
    write(m, "exit 5\n");
    let st = child.wait().unwrap();
    let _ = tx.send(());
    let _ = guard.join();
    assert_eq!(st.code(), Some(5));
    let after = nix::sys::termios::tcgetattr(&pty.slave).unwrap();
    assert_eq!(
        before.local_flags, after.local_flags,
        "terminal mode restored"
    );
    ctx.assert_no_leftovers(&id);
}

/// `exec -t` in the foreground without a console socket: cuddy relays the
/// container pty to the caller's terminal and exits with the status.
#[test]
fn exec_tty_relays_through_a_real_pty() {
    require_root!();
    let ctx = Ctx::new("ttyxr");
    let id = ctx.id("x");
    let b = ctx.bundle("x", &ctx.config(&["/bin/sleep", "1000"]));
    assert_ok(
        &ctx.cuddy(&["create", "--bundle", b.to_str().unwrap(), &id]),
        "create",
    );
    assert_ok(&ctx.cuddy(&["start", &id]), "start");
    let pty = nix::pty::openpty(None, None).unwrap();
    set_winsize(pty.slave.as_raw_fd(), 33, 77);
    let mut cmd = ctx.cmd();
    cmd.args(["exec", "-t", &id, "/bin/sh"]);
    cmd.stdin(std::process::Stdio::from(pty.slave.try_clone().unwrap()));
    cmd.stdout(std::process::Stdio::from(pty.slave.try_clone().unwrap()));
    cmd.stderr(std::process::Stdio::from(pty.slave.try_clone().unwrap()));
    let mut child = cmd.spawn().unwrap();
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let guard = std::thread::spawn(move || {
        if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            // Hang guard: our unreaped child, by pid.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    });
    let m = pty.master.as_raw_fd();
    write(m, "stty size; tty; echo MARK$((3+4))\n");
    let out = read_until(m, "MARK7");
    assert!(
        out.contains("33 77") && out.contains("/dev/pts/"),
        "{out:?}"
    );
    write(m, "exit 9\n");
    let st = child.wait().unwrap();
    let _ = tx.send(());
    let _ = guard.join();
    assert_eq!(st.code(), Some(9));
    assert_eq!(ctx.state(&id)["status"], "running");
}
