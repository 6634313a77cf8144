//! Harness for integration tests that boot the real hypervisor (and guest) in QEMU.
//!
//! A test describes a run with [`Qemu`], starts it, and then waits for lines it expects while
//! every output byte is checked against failure patterns (a hypervisor panic, a Linux oops, an
//! RCU stall...). Every wait has a deadline; QEMU itself runs under `timeout`. On failure the full
//! serial log is kept in `build/test-logs/<test>.log` and its tail is printed.

pub mod fuzzer;

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Output that means the run has failed, whatever the test waits for.
pub const FAILURE_PATTERNS: &[&str] = &[
    "(HYP) PANIC",
    "Kernel panic",
    "Internal error: Oops",
    "Unable to handle kernel",
    "BUG: ",
    "WARNING: CPU:",
    "rcu: INFO: rcu_",
    "detected stall",
    "soft lockup",
    "hung_task",
    "blocked for more than",
];

/// The repository root (tests/ is one level below).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// Path inside the repository.
pub fn repo_path(relative: &str) -> PathBuf {
    repo_root().join(relative)
}

/// A QEMU run to start: the settings of `scripts/qemu.sh`, or (made by [`Qemu::plain`]) a plain
/// `qemu-system-aarch64` with only the arguments given.
#[derive(Clone, Debug)]
pub struct Qemu {
    name: String,
    /// Run `qemu-system-aarch64` with `extra_args` only, without scripts/qemu.sh.
    plain: bool,
    env: Vec<(String, String)>,
    extra_args: Vec<String>,
    /// Upper bound for the whole QEMU process.
    pub wall_limit: Duration,
    /// Patterns that count as failures for this run.
    pub failure_patterns: Vec<String>,
}

impl Qemu {
    /// A run named after the test (used for its log file).
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            plain: false,
            env: Vec::new(),
            extra_args: Vec::new(),
            wall_limit: Duration::from_secs(300),
            failure_patterns: FAILURE_PATTERNS.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// A run of `qemu-system-aarch64` itself, without the hypervisor: the QEMU arguments all come
    /// from [`Qemu::arg`] (for reference runs on plain QEMU); [`Qemu::var`] has no effect.
    pub fn plain(name: &str) -> Self {
        Self { plain: true, ..Self::new(name) }
    }

    /// Sets a `scripts/qemu.sh` variable (SMP, CPU, RAM, HYP_ARGS, KERNEL, INITRD, GUEST_ARGS...).
    pub fn var(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_string(), value.into()));
        self
    }

    /// Adds raw QEMU arguments.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    pub fn wall_limit(mut self, limit: Duration) -> Self {
        self.wall_limit = limit;
        self
    }

    /// Adds a failure pattern for this run.
    pub fn fail_on(mut self, pattern: &str) -> Self {
        self.failure_patterns.push(pattern.to_string());
        self
    }

    /// Removes a failure pattern (for a test that provokes exactly that output).
    pub fn allow(mut self, pattern: &str) -> Self {
        self.failure_patterns.retain(|p| p != pattern);
        self
    }

    pub fn start(&self) -> Run {
        let limit = self.wall_limit.as_secs().to_string();
        let mut command = if self.plain {
            // As scripts/qemu.sh does with TIMEOUT.
            let mut command = Command::new("timeout");
            command.args(["--foreground", "-k", "5", &limit, "qemu-system-aarch64"]);
            command
        } else {
            let mut command = Command::new(repo_path("scripts/qemu.sh"));
            command.env("TIMEOUT", &limit);
            command
        };
        command
            // Its own process group, so ending the run ends QEMU too (killing only the
            // `timeout` wrapper would leave QEMU running).
            .process_group(0)
            .args(&self.extra_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in &self.env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("QEMU starts");
        let output = Arc::new(Mutex::new(String::new()));
        let readers = [
            spawn_reader(child.stdout.take().expect("piped stdout"), output.clone()),
            spawn_reader(child.stderr.take().expect("piped stderr"), output.clone()),
        ];
        Run {
            name: self.name.clone(),
            stdin: child.stdin.take(),
            child,
            output,
            cursor: 0,
            readers: readers.into_iter().collect(),
            failure_patterns: self.failure_patterns.clone(),
            started: Instant::now(),
        }
    }
}

fn spawn_reader(mut source: impl Read + Send + 'static, sink: Arc<Mutex<String>>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = source.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().expect("output lock").push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
}

/// A running QEMU.
pub struct Run {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    output: Arc<Mutex<String>>,
    /// Expectations match only after the previous match.
    cursor: usize,
    readers: Vec<thread::JoinHandle<()>>,
    failure_patterns: Vec<String>,
    started: Instant,
}

impl Run {
    /// Everything printed so far.
    pub fn output(&self) -> String {
        self.output.lock().expect("output lock").clone()
    }

    fn failure_in(&self, text: &str) -> Option<String> {
        self.failure_patterns.iter().find(|p| text.contains(p.as_str())).cloned()
    }

    /// Waits until `pattern` appears after the previous match; returns the line it is on.
    pub fn expect(&mut self, pattern: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let text = self.output();
            if let Some(bad) = self.failure_in(&text) {
                self.fail(&format!("failure pattern {bad:?} while waiting for {pattern:?}"));
            }
            if let Some(pos) = text[self.cursor.min(text.len())..].find(pattern) {
                let start = self.cursor + pos;
                let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
                // Return whole lines only: the rest of this one may still be on its way.
                let exited = matches!(self.child.try_wait(), Ok(Some(_)));
                if let Some(end) = text[start..].find('\n').map(|i| start + i).or(exited.then_some(text.len())) {
                    self.cursor = start + pattern.len();
                    return text[line_start..end].trim_end_matches('\r').to_string();
                }
            }
            if Instant::now() > deadline {
                self.fail(&format!("timed out after {within:?} waiting for {pattern:?}"));
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the readers drain, then look once more.
                thread::sleep(Duration::from_millis(200));
                let text = self.output();
                if !text[self.cursor.min(text.len())..].contains(pattern) {
                    self.fail(&format!("QEMU exited ({status}) before {pattern:?} appeared"));
                }
                continue;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Types `text` on the serial console.
    pub fn send(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin.write_all(text.as_bytes()).and_then(|_| stdin.flush()).expect("write to QEMU's stdin");
    }

    /// Types a command followed by Enter.
    pub fn send_line(&mut self, command: &str) {
        self.send(&format!("{command}\r"));
    }

    /// Waits for QEMU to exit by itself; fails the test on a timeout or a failure pattern.
    pub fn expect_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                for reader in self.readers.drain(..) {
                    let _ = reader.join();
                }
                let text = self.output();
                if let Some(bad) = self.failure_in(&text) {
                    self.fail(&format!("failure pattern {bad:?} in the output"));
                }
                self.save_log();
                return status;
            }
            if Instant::now() > deadline {
                self.fail(&format!("QEMU did not exit within {within:?}"));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Seconds since QEMU started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn log_path(&self) -> PathBuf {
        repo_path(&format!("build/test-logs/{}.log", self.name))
    }

    fn save_log(&self) {
        let path = self.log_path();
        let _ = std::fs::create_dir_all(path.parent().expect("log dir"));
        let _ = std::fs::write(&path, self.output());
    }

    /// Kills QEMU and everything else in its process group.
    fn kill(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Fails the test: kills QEMU, saves the log, prints its tail.
    pub fn fail(&mut self, why: &str) -> ! {
        self.kill();
        self.save_log();
        let text = self.output();
        let tail: Vec<&str> = text.lines().rev().take(60).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "{}: {why}\n--- last lines (full log: {}) ---\n{}",
            self.name,
            self.log_path().display(),
            tail.join("\n")
        );
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
        self.save_log();
    }
}

/// Writes a small file of `size` bytes of a repeated byte under build/test-files/ (a stand-in
/// module where only addresses and sizes matter).
pub fn scratch_file(name: &str, size: usize) -> PathBuf {
    let path = repo_path(&format!("build/test-files/{name}"));
    std::fs::create_dir_all(path.parent().expect("dir")).expect("create build/test-files");
    std::fs::write(&path, vec![0x5au8; size]).expect("write scratch file");
    path
}

/// Whether `line` is the hypervisor's (its own log, or the HRT console it prints).
fn is_hypervisor_line(line: &str) -> bool {
    line.starts_with("(HYP)") || line.starts_with("(HRT)")
}

/// The guest's whole lines in `output`. When a hypervisor line breaks an unfinished guest line,
/// the console ends the guest's fragment, prints its own line, then writes the guest's line
/// again from its start: such a fragment (a guest line that the next guest line, after
/// hypervisor lines, starts with) is left out, so each guest line counts once.
pub fn guest_lines(output: &str) -> Vec<&str> {
    let lines: Vec<(&str, bool)> =
        output.lines().map(|line| line.trim_end_matches('\r')).map(|line| (line, is_hypervisor_line(line))).collect();
    let mut whole = Vec::new();
    for (i, &(line, hypervisor)) in lines.iter().enumerate() {
        if hypervisor {
            continue;
        }
        let rest = &lines[i + 1..];
        let interrupted = rest.first().is_some_and(|&(_, next_is_hypervisor)| next_is_hypervisor);
        let redrawn = rest.iter().find(|(_, h)| !h).is_some_and(|(next, _)| next.starts_with(line));
        if !(interrupted && redrawn && !line.is_empty()) {
            whole.push(line);
        }
    }
    whole
}

/// How many of the guest's whole lines (see [`guest_lines`]) contain `marker`.
pub fn count_guest_lines(output: &str, marker: &str) -> usize {
    guest_lines(output).iter().filter(|line| line.contains(marker)).count()
}

/// A TCP port nobody listens on right now (for gdb servers of parallel tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_line_broken_by_a_hypervisor_line_counts_once() {
        let output = "HVTEST: init st\n(HRT) heartbeat 3\nHVTEST: init started uptime=1.25\n\
                      (HYP) guest reset\n[    0.000000] Booting Linux\nHVTEST: init started uptime=1.25\n";
        // The fragment is left out; the same text in a later boot still counts.
        assert_eq!(count_guest_lines(output, "HVTEST: init st"), 2);
        assert_eq!(
            guest_lines(output),
            ["HVTEST: init started uptime=1.25", "[    0.000000] Booting Linux", "HVTEST: init started uptime=1.25"]
        );
    }

    #[test]
    fn a_whole_line_followed_by_a_hypervisor_line_counts() {
        let output = "HVTEST: init started uptime=0.9\r\n(HRT) ready\nHVTEST: shell ready\n";
        assert_eq!(count_guest_lines(output, "HVTEST: init started"), 1);
        assert_eq!(count_guest_lines(output, "HVTEST: shell ready"), 1);
    }
}
