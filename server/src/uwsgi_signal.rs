//! uWSGI signals (`core/signal.c`): what the app's processes tell the
//! master about them, and where a signal goes.
//!
//! A uWSGI signal is a number, 0–255, with a handler the app registered
//! (`uwsgi.register_signal(num, target, handler)`) and a target saying which
//! worker runs it. The app raises one (`uwsgi.signal(num)`), or has the
//! master raise it on a timer, a cron schedule or a file change
//! (`add_timer`, `add_rb_timer`, `add_cron`, `add_file_monitor`, and the
//! `uwsgidecorators` built on them); the master routes it to the target.
//!
//! Each prototype generation has a datagram socketpair with the master:
//! the prototype and the workers it forks hold one end (the fd in
//! [`FD_ENV`]) and send [`Message`]s on it; one datagram is one message, so
//! threads and processes never interleave. The master delivers a signal to
//! a worker in a SIGNAL frame on its request channel (`ipc.rs`), as a
//! request without a client, and to a spooler process or a mule as one
//! byte on an [`HelperInbox`].

/// The environment variable that carries the prototype's end of the socket.
pub const FD_ENV: &str = "RWSGI_SIGNAL_FD";
/// The largest datagram.
pub const MAX_MESSAGE: usize = 512;
/// The longest target name (uWSGI's table keeps 63 bytes).
pub const MAX_TARGET: usize = 63;
/// The longest monitored path (uWSGI's table keeps 254 bytes).
pub const MAX_PATH: usize = 254;
/// At most this many timers (and as many rb-timers, crons, file monitors),
/// uWSGI's limit.
pub const MAX_TIMERS: usize = 64;

/// What a process tells the master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// `uwsgi.signal(num)`: route it.
    Raise(u8),
    /// `uwsgi.register_signal(num, target, handler)`.
    Register(u8, Target),
    /// `uwsgi.add_timer(num, secs)`: raise it every `secs` seconds.
    Timer(u8, u32),
    /// `uwsgi.add_rb_timer(num, secs, iterations)`: the same, `iterations`
    /// times (0: forever).
    RbTimer(u8, u32, u32),
    /// `uwsgi.add_cron(num, minute, hour, day, month, weekday)`.
    Cron(u8, [i32; 5]),
    /// `uwsgi.add_file_monitor(num, path)`: raise it when the path changes.
    FileMonitor(u8, String),
}

const RAISE: u8 = 1;
const REGISTER: u8 = 2;
const TIMER: u8 = 3;
const RB_TIMER: u8 = 4;
const CRON: u8 = 5;
const FILE_MONITOR: u8 = 6;

impl Message {
    /// The datagram: kind, signal number, then the kind's fields
    /// (little-endian).
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(32);
        match self {
            Message::Raise(n) => b.extend([RAISE, *n]),
            Message::Register(n, t) => {
                b.extend([REGISTER, *n]);
                b.extend_from_slice(t.name().as_bytes());
            }
            Message::Timer(n, secs) => {
                b.extend([TIMER, *n]);
                b.extend(secs.to_le_bytes());
            }
            Message::RbTimer(n, secs, it) => {
                b.extend([RB_TIMER, *n]);
                b.extend(secs.to_le_bytes());
                b.extend(it.to_le_bytes());
            }
            Message::Cron(n, when) => {
                b.extend([CRON, *n]);
                when.iter().for_each(|f| b.extend(f.to_le_bytes()));
            }
            Message::FileMonitor(n, path) => {
                b.extend([FILE_MONITOR, *n]);
                b.extend_from_slice(path.as_bytes());
            }
        }
        b
    }

    /// Decodes a datagram; `None` for anything malformed.
    pub fn decode(d: &[u8]) -> Option<Message> {
        let (&[kind, n], rest) = d.split_first_chunk::<2>()?;
        let u32_at = |i: usize| -> Option<u32> {
            Some(u32::from_le_bytes(*rest.get(i..)?.first_chunk::<4>()?))
        };
        Some(match kind {
            RAISE if rest.is_empty() => Message::Raise(n),
            REGISTER => Message::Register(n, Target::parse(std::str::from_utf8(rest).ok()?).ok()?),
            TIMER if rest.len() == 4 => Message::Timer(n, u32_at(0)?),
            RB_TIMER if rest.len() == 8 => Message::RbTimer(n, u32_at(0)?, u32_at(4)?),
            CRON if rest.len() == 20 => {
                let mut when = [0i32; 5];
                for (i, f) in when.iter_mut().enumerate() {
                    *f = u32_at(i * 4)? as i32;
                }
                Message::Cron(n, when)
            }
            FILE_MONITOR if !rest.is_empty() && rest.len() <= MAX_PATH => {
                Message::FileMonitor(n, String::from_utf8(rest.to_vec()).ok()?)
            }
            _ => return None,
        })
    }
}

/// Where a signal goes (`uwsgi_route_signal`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `""`, `"worker"`, `"worker0"`: the first worker free.
    Any,
    /// `"workers"`: every running worker.
    All,
    /// `"active-workers"` (uWSGI 2.1): every running worker; here the same
    /// as `workers`, since a cheaped worker is not running.
    Active,
    /// `"workerN"`: worker N.
    Worker(u32),
    /// `"spooler"`: the first spooler process free.
    Spooler,
    /// `"mule"`/`"mule0"`: the first mule free; `"muleN"`: mule N.
    Mule(u32),
    /// `"mules"`: every mule.
    Mules,
    /// `"farmN"`: the first free mule of farm N (1-based).
    FarmIndex(u32),
    /// `"farm_NAME"`: the first free mule of that farm.
    FarmName(String),
}

impl Target {
    /// Reads a target name (uWSGI's; `subscribed` is not one here).
    pub fn parse(s: &str) -> Result<Target, String> {
        let bad = || format!("invalid signal target: {s}");
        let number = |n: &str| n.parse::<u32>().map_err(|_| bad());
        Ok(match s {
            "" | "worker" | "worker0" => Target::Any,
            "workers" => Target::All,
            "active-workers" => Target::Active,
            "spooler" => Target::Spooler,
            "mule" => Target::Mule(0),
            "mules" => Target::Mules,
            _ => {
                if let Some(name) = s.strip_prefix("farm_").filter(|n| !n.is_empty()) {
                    Target::FarmName(name.to_owned())
                } else if let Some(n) = s.strip_prefix("farm") {
                    Target::FarmIndex(number(n)?)
                } else if let Some(n) = s.strip_prefix("mule") {
                    Target::Mule(number(n)?)
                } else if let Some(n) = s.strip_prefix("worker") {
                    Target::Worker(number(n)?)
                } else {
                    return Err(bad());
                }
            }
        })
    }

    /// The name, as `parse` reads it back.
    pub fn name(&self) -> String {
        match self {
            Target::Any => String::new(),
            Target::All => "workers".into(),
            Target::Active => "active-workers".into(),
            Target::Worker(n) => format!("worker{n}"),
            Target::Spooler => "spooler".into(),
            Target::Mule(0) => "mule".into(),
            Target::Mule(n) => format!("mule{n}"),
            Target::Mules => "mules".into(),
            Target::FarmIndex(n) => format!("farm{n}"),
            Target::FarmName(n) => format!("farm_{n}"),
        }
    }
}

/// The signal inbox of a helper process (spooler processes, mules): the
/// prototype makes one datagram socketpair per inbox before it forks and
/// gives the master its end (a `HelperInbox` control message); the helper
/// reads one byte, the signal number, from the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HelperInbox {
    /// Read by every spooler process.
    Spoolers,
    /// Read by every mule.
    Mules,
    /// Mule N's own.
    Mule(u32),
    /// Read by the mules of farm N (1-based).
    Farm(u32),
}

impl HelperInbox {
    /// (kind, id) as a control message carries them.
    pub fn to_words(self) -> (u32, u32) {
        match self {
            HelperInbox::Spoolers => (0, 0),
            HelperInbox::Mules => (1, 0),
            HelperInbox::Mule(n) => (2, n),
            HelperInbox::Farm(n) => (3, n),
        }
    }

    /// The inverse of [`HelperInbox::to_words`].
    pub fn from_words(kind: u32, id: u32) -> Option<HelperInbox> {
        Some(match kind {
            0 => HelperInbox::Spoolers,
            1 => HelperInbox::Mules,
            2 => HelperInbox::Mule(id),
            3 => HelperInbox::Farm(id),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_garbage_is_refused() {
        let all = [
            Message::Raise(17),
            Message::Register(3, Target::Any),
            Message::Register(4, Target::Worker(2)),
            Message::Register(6, Target::FarmName("images".into())),
            Message::Register(5, Target::All),
            Message::Timer(9, 30),
            Message::RbTimer(10, 5, 3),
            Message::Cron(11, [-1, 3, -1, -1, 5]),
            Message::FileMonitor(12, "/tmp/x".into()),
        ];
        for m in all {
            assert_eq!(Message::decode(&m.encode()), Some(m));
        }
        for bad in [
            &b""[..],
            b"\x01",
            b"\x01\x02\x03",
            b"\x03\x01\x00",
            b"\x09\x01",
            b"\x02\x01mulex",
            b"\x06\x01",
            b"\x05\x01\x00\x00\x00\x00",
        ] {
            assert_eq!(Message::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn targets_are_uwsgis_names() {
        assert_eq!(Target::parse(""), Ok(Target::Any));
        assert_eq!(Target::parse("worker0"), Ok(Target::Any));
        assert_eq!(Target::parse("workers"), Ok(Target::All));
        assert_eq!(Target::parse("worker12"), Ok(Target::Worker(12)));
        assert!(Target::parse("workerx").is_err());
        assert_eq!(Target::parse("spooler"), Ok(Target::Spooler));
        assert_eq!(Target::parse("mule"), Ok(Target::Mule(0)));
        assert_eq!(Target::parse("mule2"), Ok(Target::Mule(2)));
        assert_eq!(Target::parse("mules"), Ok(Target::Mules));
        assert_eq!(Target::parse("farm1"), Ok(Target::FarmIndex(1)));
        assert_eq!(
            Target::parse("farm_img"),
            Ok(Target::FarmName("img".into()))
        );
        assert!(Target::parse("subscribed").is_err());
        for t in [
            "", "workers", "worker3", "spooler", "mule", "mule4", "mules", "farm2", "farm_x",
        ] {
            assert_eq!(Target::parse(t).unwrap().name(), t);
        }
        for inbox in [
            HelperInbox::Spoolers,
            HelperInbox::Mules,
            HelperInbox::Mule(3),
            HelperInbox::Farm(2),
        ] {
            let (k, i) = inbox.to_words();
            assert_eq!(HelperInbox::from_words(k, i), Some(inbox));
        }
    }
}
