//! A private network for fault tests: one Linux network namespace per member (a NATS node, a
//! server host), each joined by a veth pair to a bridge in the test's own namespace (which
//! reaches every member, as clients do), and faults made and healed as nftables rules inside the
//! members' namespaces: a cut both ways, a cut one way, a member isolated from others. Needs root
//! (or CAP_NET_ADMIN and CAP_SYS_ADMIN), `ip` (iproute2) and `nft` (nftables); `Net::create`
//! says which is missing. Everything it made is removed on drop. Knows nothing of NATS or HTTP.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// One member of the network.
struct Member {
    name: String,
    ns: String,
    ip: String,
}

/// A running private network; see the module documentation.
pub struct Net {
    tag: String,
    bridge: String,
    members: Vec<Member>,
    children: Vec<Child>,
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Moves the calling thread into the network namespace mounted at `path`.
fn enter_path(path: &str) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path)?;
    // SAFETY: `setns` with a valid namespace file descriptor changes only this thread's network
    // namespace; the descriptor outlives the call.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn in_ns(ns: &str, args: &[&str]) -> Result<(), String> {
    let mut all = vec!["ip", "netns", "exec", ns];
    all.extend_from_slice(args);
    run(&all)
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl Net {
    /// Makes a namespace per name (the bridge gets `.254`, members `.1`, `.2`, ... in order).
    pub fn create(names: &[&str]) -> Result<Net, String> {
        for tool in ["ip", "nft"] {
            if Command::new(tool).arg("-V").output().is_err() && Command::new(tool).arg("--version").output().is_err() {
                return Err(format!("`{tool}` is not installed (Debian: iproute2, nftables)"));
            }
        }
        let k = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let tag = format!("ds{}{}", pid % 100_000, k);
        // A /24 picked from the process id, unlikely to meet another test's or the machine's.
        let subnet = format!("10.{}.{}", 100 + (pid % 100), (pid / 100 % 200) + k % 50);
        let bridge = format!("{tag}br");
        let mut net = Net {
            tag: tag.clone(),
            bridge: bridge.clone(),
            members: Vec::new(),
            children: Vec::new(),
        };
        run(&["ip", "link", "add", &bridge, "type", "bridge"])
            .map_err(|e| format!("cannot make network namespaces here (root needed): {e}"))?;
        run(&["ip", "addr", "add", &format!("{subnet}.254/24"), "dev", &bridge])?;
        run(&["ip", "link", "set", &bridge, "up"])?;
        for (i, name) in names.iter().enumerate() {
            let ns = format!("{tag}-{name}");
            let ip = format!("{subnet}.{}", i + 1);
            let (outer, inner) = (format!("{tag}o{i}"), format!("{tag}i{i}"));
            run(&["ip", "netns", "add", &ns])?;
            net.members.push(Member {
                name: name.to_string(),
                ns: ns.clone(),
                ip: ip.clone(),
            });
            run(&["ip", "link", "add", &outer, "type", "veth", "peer", "name", &inner])?;
            run(&["ip", "link", "set", &inner, "netns", &ns])?;
            run(&["ip", "link", "set", &outer, "master", &bridge])?;
            run(&["ip", "link", "set", &outer, "up"])?;
            in_ns(&ns, &["ip", "addr", "add", &format!("{ip}/24"), "dev", &inner])?;
            in_ns(&ns, &["ip", "link", "set", &inner, "up"])?;
            in_ns(&ns, &["ip", "link", "set", "lo", "up"])?;
            in_ns(&ns, &["nft", "add", "table", "inet", "dsfault"])?;
            for (chain, hook) in [("in", "input"), ("out", "output")] {
                let spec = format!("{{ type filter hook {hook} priority 0 ; }}");
                in_ns(&ns, &["nft", "add", "chain", "inet", "dsfault", chain, &spec])?;
            }
        }
        Ok(net)
    }

    fn member(&self, name: &str) -> &Member {
        self.members
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no member {name}"))
    }

    /// The member's address.
    pub fn ip(&self, name: &str) -> String {
        self.member(name).ip.clone()
    }

    /// A command that runs `program` inside the member's namespace (add arguments, environment
    /// and output to it, then `spawn` it with [`Net::start`]).
    pub fn command(&self, name: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.member(name).ns, program]).stdin(Stdio::null());
        c
    }

    /// Moves the calling thread (only it) into the member's namespace: sockets it makes from
    /// then on live there, e.g. a listener the member reaches on its own loopback.
    pub fn enter(&self, name: &str) -> std::io::Result<()> {
        enter_path(&format!("/var/run/netns/{}", self.member(name).ns))
    }

    /// [`Net::enter`] for another thread: the returned function moves the thread that calls it.
    pub fn enter_fn(&self, name: &str) -> impl FnOnce() -> std::io::Result<()> + Send + 'static {
        let path = format!("/var/run/netns/{}", self.member(name).ns);
        move || enter_path(&path)
    }

    /// Starts `cmd` (from [`Net::command`]); it is killed when the network is dropped.
    pub fn start(&mut self, cmd: &mut Command) -> std::io::Result<u32> {
        let child = cmd.spawn()?;
        let pid = child.id();
        self.children.push(child);
        Ok(pid)
    }

    /// Kills (-9) the process started as `pid`.
    pub fn kill(&mut self, pid: u32) {
        if let Some(i) = self.children.iter().position(|c| c.id() == pid) {
            let mut c = self.children.remove(i);
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn rule(&self, name: &str, chain: &str, what: &str, peer: &str) {
        let m = self.member(name);
        let rule = format!("ip {what} {peer} drop");
        in_ns(&m.ns, &["nft", "add", "rule", "inet", "dsfault", chain, &rule]).unwrap_or_else(|e| panic!("fault: {e}"));
    }

    /// Packets from `from` to `to` are dropped (one way: `to` may still send to `from`).
    pub fn cut_one_way(&self, from: &str, to: &str) {
        self.rule(from, "out", "daddr", &self.ip(to));
        self.rule(to, "in", "saddr", &self.ip(from));
    }

    /// No packet passes between `a` and `b`, either way.
    pub fn cut(&self, a: &str, b: &str) {
        self.cut_one_way(a, b);
        self.cut_one_way(b, a);
    }

    /// `a` is cut from each of `others` (the test's own namespace still reaches it).
    pub fn isolate(&self, a: &str, others: &[&str]) {
        for o in others {
            self.cut(a, o);
        }
    }

    /// Every fault removed.
    pub fn heal(&self) {
        for m in &self.members {
            for chain in ["in", "out"] {
                in_ns(&m.ns, &["nft", "flush", "chain", "inet", "dsfault", chain]).unwrap_or_else(|e| panic!("heal: {e}"));
            }
        }
    }

    /// The name prefix of everything this network made (namespaces, links).
    pub fn tag(&self) -> &str {
        &self.tag
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for m in &self.members {
            // Anything else still running in the namespace goes with it.
            if let Ok(out) = Command::new("ip").args(["netns", "pids", &m.ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = run(&["ip", "netns", "del", &m.ns]);
        }
        let _ = run(&["ip", "link", "del", &self.bridge]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ping(net: &Net, from: &str, to: &str) -> bool {
        net.command(from, "ping")
            .args(["-c", "1", "-W", "1", &net.ip(to)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Needs root: fails (does not skip) where namespaces cannot be made, as the fault tests do.
    #[test]
    fn members_reach_each_other_until_cut_and_again_after_heal() {
        let net = Net::create(&["a", "b", "c"]).unwrap_or_else(|e| panic!("{e}"));
        assert!(ping(&net, "a", "b") && ping(&net, "b", "c"));
        net.cut("a", "b");
        assert!(!ping(&net, "a", "b") && !ping(&net, "b", "a"), "cut both ways");
        assert!(ping(&net, "a", "c"), "a still reaches c");
        net.heal();
        assert!(ping(&net, "a", "b"));
        net.cut_one_way("a", "b");
        assert!(!ping(&net, "a", "b"), "a's packets to b are dropped (and so are its replies to b)");
        net.heal();
        let tag = net.tag().to_string();
        drop(net);
        let left = Command::new("ip").args(["netns", "list"]).output().unwrap();
        assert!(!String::from_utf8_lossy(&left.stdout).contains(&tag), "namespaces removed");
    }
}
