//! uWSGI's internal routing, the part production configs use
//! (`core/routing.c`, `plugins/router_redirect`, `router_basicauth`): rules
//! the master runs on a request's CGI variables before any worker, in the
//! order given, to redirect, refuse, or ask for a password.
//!
//! Rules: `route-run = ACTION` (every request), `route-label = NAME` (a
//! place `goto` jumps to), `route = REGEXP ACTION` (on `PATH_INFO`), `route-uri`
//! (`REQUEST_URI`), `route-qs` (`QUERY_STRING`), `route-host`
//! (`HTTP_HOST`), `route-remote-addr`, `route-user-agent`,
//! `route-referer`, and `route-if = CONDITION:ARGS ACTION` / `route-if-not`
//! with the conditions `equal`/`isequal`/`eq` (`a;b`), `startswith`,
//! `endswith`, `contains`/`contain`, `regexp`/`re` (`value;regexp`),
//! `empty`, `isfile`, `isdir`, `exists`.
//!
//! Actions: `redirect`/`redirect-302` and `redirect-permanent`/
//! `redirect-301` (`Location`, body `Moved`), `return:CODE` (the status and
//! its reason as the body), `break:STATUS LINE` (the status, no body),
//! `break` (the request ends without a response over uwsgi, with a 500 over
//! HTTP, which must answer), `continue`/`last` (on to the app),
//! `basicauth:REALM,USER:PASSWORD` (a 401 unless the request carries those
//! credentials; then the next rule), `addheader:NAME: VALUE` (added to the
//! response, whoever makes it; then the next rule), `static:PATH` (that
//! file, served as `static-map` serves one; 404 when it is not there),
//! `rewrite:PATH[?QUERY]` (the app, and the later rules, see the new
//! `PATH_INFO`, and `QUERY_STRING` when given; `rewrite-last` stops there),
//! `log:TEXT`, `addvar:NAME=VALUE` and `setmethod`, `seturi`, `setpathinfo`,
//! `setscriptname`, `setremoteaddr`, `setdocroot`, `setuser` (a CGI
//! variable for the later rules and the app), `goto:LABEL` (forward only:
//! a jump back, or to a label computed at run time that does not exist,
//! ends the request with uWSGI's error line). In an action, `$1`…`$9` are
//! the regexp's groups and `${VAR}` a CGI variable.
//!
//! Any other rule or action is refused when the configuration is read, by
//! name: a routing table that silently skipped a rule would serve what it
//! was meant to protect.

use regex_lite::Regex;

/// What a request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// On to the app (or the static files): what the routing changed.
    Pass(Passed),
    /// This response, from the master.
    Respond(Answer),
    /// This file, served by the master as a static file (`static:PATH`),
    /// with these headers added.
    Static(std::path::PathBuf, Vec<(String, String)>),
    /// No response: close the connection.
    Close,
}

/// What a request that goes on carries from the routing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Passed {
    /// Headers added to its response (`addheader`).
    pub headers: Vec<(String, String)>,
    /// CGI variables the routing set (`rewrite`, `addvar`, `setpathinfo`,
    /// …), in the order set, each name once.
    vars: Vec<(String, String)>,
}

impl Passed {
    /// The request's value of `k`, as the routing set it.
    fn get(&self, k: &str) -> Option<&[u8]> {
        self.vars
            .iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.as_bytes())
    }

    fn set(&mut self, k: &str, v: String) {
        match self.vars.iter_mut().find(|(name, _)| name == k) {
            Some((_, old)) => *old = v,
            None => self.vars.push((k.to_owned(), v)),
        }
    }

    /// `PATH_INFO` as the routing set it, if it did.
    pub fn path_info(&self) -> Option<&str> {
        self.vars
            .iter()
            .find(|(name, _)| name == "PATH_INFO")
            .map(|(_, v)| v.as_str())
    }

    /// Whether the routing changed the request's variables.
    pub fn rewritten(&self) -> bool {
        !self.vars.is_empty()
    }

    /// Applies the changes to CGI variables (the app's).
    pub fn apply(&self, vars: &mut Vec<(Vec<u8>, Vec<u8>)>) {
        for (name, value) in &self.vars {
            match vars.iter_mut().find(|(k, _)| k == name.as_bytes()) {
                Some((_, v)) => *v = value.as_bytes().to_vec(),
                None => vars.push((name.as_bytes().to_vec(), value.as_bytes().to_vec())),
            }
        }
    }
}

/// A response the routing makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status line without the protocol (`302 Found`).
    pub status: String,
    /// Headers besides `Content-Type`/`Content-Length`.
    pub headers: Vec<(String, String)>,
    /// The body (`text/plain`).
    pub body: Vec<u8>,
}

impl Answer {
    /// The numeric status.
    pub fn code(&self) -> u16 {
        self.status
            .get(..3)
            .and_then(|c| c.parse().ok())
            .unwrap_or(500)
    }
}

#[derive(Debug)]
enum Subject {
    /// `route-run`: every request.
    Always,
    /// A CGI variable matched against a regexp.
    Var(&'static str, Regex),
    /// A `route-if` condition.
    Cond {
        kind: Cond,
        args: String,
        negate: bool,
        /// `regexp`'s, compiled once.
        re: Option<Regex>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cond {
    Equal,
    StartsWith,
    EndsWith,
    Contains,
    Regexp,
    Empty,
    IsFile,
    IsDir,
    Exists,
}

#[derive(Debug)]
enum Action {
    Redirect(u16, String),
    Return(u16),
    Break(Option<String>),
    Continue,
    BasicAuth {
        realm: String,
        /// `Basic <base64 of user:password>`, as the header carries it.
        expected: String,
    },
    Log(String),
    AddHeader(String),
    Static(String),
    /// `rewrite` (then the next rule) and `rewrite-last` (then the app).
    Rewrite(String, bool),
    /// `addvar:NAME=VALUE` and the `set*` actions (`setpathinfo`, …): a
    /// CGI variable for the later rules and the app.
    SetVar(String, String),
    /// `goto:LABEL` (forward only, as in uWSGI).
    Goto(String),
}

#[derive(Debug)]
struct Rule {
    subject: Subject,
    action: Action,
}

/// The routing table.
#[derive(Debug, Default)]
pub struct Rules {
    rules: Vec<Rule>,
    /// `route-label = NAME`: the index of the rule that follows it.
    labels: Vec<(String, usize)>,
}

/// The routing options rwsgi runs.
pub const OPTIONS: [&str; 11] = [
    "route-run",
    "route-label",
    "route",
    "route-uri",
    "route-qs",
    "route-host",
    "route-remote-addr",
    "route-user-agent",
    "route-referer",
    "route-if",
    "route-if-not",
];

fn var_of(option: &str) -> Option<&'static str> {
    Some(match option {
        "route" => "PATH_INFO",
        "route-uri" => "REQUEST_URI",
        "route-qs" => "QUERY_STRING",
        "route-host" => "HTTP_HOST",
        "route-remote-addr" => "REMOTE_ADDR",
        "route-user-agent" => "HTTP_USER_AGENT",
        "route-referer" => "HTTP_REFERER",
        _ => return None,
    })
}

impl Rules {
    /// Reads the rules, `(option, value)` in the order given.
    pub fn parse(specs: &[(String, String)]) -> Result<Rules, String> {
        let mut table = Rules::default();
        for (opt, v) in specs {
            if opt == "route-label" {
                table.labels.push((v.trim().to_owned(), table.rules.len()));
                continue;
            }
            let rule = Rule::parse(opt, v).map_err(|e| format!("{opt} = {v}: {e}"))?;
            table.rules.push(rule);
        }
        // A label without `$` is checked now: an unknown one is a typo.
        for rule in &table.rules {
            if let Action::Goto(label) = &rule.action {
                if !label.contains('$') && table.label(label).is_none() {
                    return Err(format!("goto:{label}: there is no route-label = {label}"));
                }
            }
        }
        Ok(table)
    }

    /// The index of the rule after `route-label = name`.
    fn label(&self, name: &str) -> Option<usize> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, at)| *at)
    }

    /// Whether there are no rules (the request path skips routing).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Runs the table on a request whose CGI variables `var` gives.
    pub fn run<'a>(&self, var: impl Fn(&str) -> Option<&'a [u8]>) -> Decision {
        let mut passed = Passed::default();
        let decision = self.decide(&var, &mut passed);
        match decision {
            Decision::Pass(_) => Decision::Pass(passed),
            Decision::Static(path, _) => Decision::Static(path, passed.headers),
            Decision::Respond(mut a) => {
                a.headers.extend(passed.headers);
                Decision::Respond(a)
            }
            Decision::Close => Decision::Close,
        }
    }

    fn decide<'a>(&self, var: &impl Fn(&str) -> Option<&'a [u8]>, passed: &mut Passed) -> Decision {
        let mut pc = 0;
        while let Some(rule) = self.rules.get(pc) {
            pc += 1;
            // Later rules see what `rewrite` changed.
            let seen = passed.clone();
            let get = |k: &str| seen.get(k).or_else(|| var(k));
            let Some(groups) = rule.subject.matches(&get) else {
                continue;
            };
            let fill = |t: &str| expand(t, &groups, &get);
            match &rule.action {
                Action::Redirect(code, to) => {
                    let location = fill(to);
                    // A decoded PATH_INFO may hold CR LF: never into a header.
                    if !header_safe(&location) {
                        return bad_request();
                    }
                    let status = format!("{code} {}", crate::http_status::reason(*code));
                    return Decision::Respond(Answer {
                        status,
                        headers: vec![("Location".into(), location)],
                        body: b"Moved".to_vec(),
                    });
                }
                Action::Return(code) => {
                    let reason = crate::http_status::reason(*code);
                    return Decision::Respond(Answer {
                        status: format!("{code} {reason}"),
                        headers: Vec::new(),
                        body: reason.as_bytes().to_vec(),
                    });
                }
                Action::Break(Some(line)) => {
                    let status = fill(line);
                    if !header_safe(&status) {
                        return bad_request();
                    }
                    return Decision::Respond(Answer {
                        status,
                        headers: Vec::new(),
                        body: Vec::new(),
                    });
                }
                Action::Break(None) => return Decision::Close,
                Action::Continue => return Decision::Pass(Passed::default()),
                Action::BasicAuth { realm, expected } => {
                    let given = get("HTTP_AUTHORIZATION").unwrap_or_default();
                    if given != expected.as_bytes() {
                        return Decision::Respond(Answer {
                            status: "401 Authorization Required".into(),
                            headers: vec![(
                                "WWW-Authenticate".into(),
                                format!("Basic realm=\"{realm}\""),
                            )],
                            body: Vec::new(),
                        });
                    }
                }
                Action::Log(text) => {
                    tracing::info!(event = "route_log", "{}", fill(text));
                }
                Action::Static(path) => {
                    let path = fill(path);
                    if path.contains('\0') {
                        return bad_request();
                    }
                    return Decision::Static(path.into(), Vec::new());
                }
                Action::Rewrite(to, last) => {
                    let to = fill(to);
                    if to.contains('\0') {
                        return bad_request();
                    }
                    let (path, qs) = match to.split_once('?') {
                        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
                        None => (to, None),
                    };
                    passed.set("PATH_INFO", path);
                    if let Some(qs) = qs {
                        passed.set("QUERY_STRING", qs);
                    }
                    if *last {
                        return Decision::Pass(Passed::default());
                    }
                }
                Action::SetVar(name, value) => {
                    let value = fill(value);
                    if value.contains('\0') {
                        return bad_request();
                    }
                    passed.set(name, value);
                }
                Action::Goto(label) => {
                    let label = fill(label);
                    match self.label(&label) {
                        // Forward only, as uWSGI: no loops.
                        Some(at) if at >= pc => pc = at,
                        _ => {
                            tracing::error!(event = "route_goto_failed", label = %label,
                                "[uwsgi-route] ERROR \"goto\" instruction can only jump forward (label {label})");
                            return Decision::Close;
                        }
                    }
                }
                Action::AddHeader(h) => {
                    let h = fill(h);
                    match h.split_once(':') {
                        Some((name, value)) if header_safe(&h) && !name.trim().is_empty() => {
                            passed
                                .headers
                                .push((name.trim().to_owned(), value.trim().to_owned()));
                        }
                        _ => return bad_request(),
                    }
                }
            }
        }
        Decision::Pass(Passed::default())
    }
}

impl Rule {
    fn parse(option: &str, v: &str) -> Result<Rule, String> {
        let v = v.trim();
        if option == "route-run" {
            return Ok(Rule {
                subject: Subject::Always,
                action: Action::parse(v)?,
            });
        }
        let (subject, action) = v
            .split_once(char::is_whitespace)
            .map(|(s, a)| (s, a.trim()))
            .ok_or("a rule is SUBJECT ACTION")?;
        let subject = if let Some(var) = var_of(option) {
            let re = Regex::new(subject).map_err(|e| format!("bad regular expression: {e}"))?;
            Subject::Var(var, re)
        } else {
            let negate = match option {
                "route-if" => false,
                "route-if-not" => true,
                other => return Err(format!("{other} is not supported")),
            };
            let (name, args) = subject.split_once(':').ok_or("a condition is NAME:ARGS")?;
            let kind = match name {
                "equal" | "isequal" | "eq" | "==" => Cond::Equal,
                "startswith" => Cond::StartsWith,
                "endswith" => Cond::EndsWith,
                "contains" | "contain" => Cond::Contains,
                "regexp" | "re" => Cond::Regexp,
                "empty" => Cond::Empty,
                "isfile" => Cond::IsFile,
                "isdir" => Cond::IsDir,
                "exists" | "isexists" => Cond::Exists,
                other => {
                    return Err(format!(
                        "the route-if condition \"{other}\" is not supported"
                    ));
                }
            };
            let (args, re) = if kind == Cond::Regexp {
                let (value, re) = args.split_once(';').ok_or("regexp takes VALUE;REGEXP")?;
                let re = Regex::new(re).map_err(|e| format!("bad regular expression: {e}"))?;
                (value, Some(re))
            } else {
                (args, None)
            };
            Subject::Cond {
                kind,
                args: args.to_owned(),
                negate,
                re,
            }
        };
        Ok(Rule {
            subject,
            action: Action::parse(action)?,
        })
    }
}

impl Action {
    fn parse(a: &str) -> Result<Action, String> {
        let (name, arg) = a.split_once(':').unwrap_or((a, ""));
        Ok(match name {
            "redirect" | "redirect-302" => Action::Redirect(302, nonempty(arg, name)?),
            "redirect-permanent" | "redirect-301" => Action::Redirect(301, nonempty(arg, name)?),
            "return" => Action::Return(
                arg.trim()
                    .parse()
                    .ok()
                    .filter(|c| (100..600).contains(c))
                    .ok_or("return takes an HTTP status code")?,
            ),
            "break" => Action::Break(Some(arg.trim()).filter(|s| s.len() >= 3).map(str::to_owned)),
            "continue" | "last" => Action::Continue,
            "basicauth" => {
                let (realm, cred) = arg.split_once(',').filter(|(_, c)| c.contains(':')).ok_or(
                    "basicauth takes REALM,USER:PASSWORD (htpasswd files are not supported)",
                )?;
                Action::BasicAuth {
                    realm: realm.to_owned(),
                    expected: format!("Basic {}", base64(cred.as_bytes())),
                }
            }
            "log" => Action::Log(arg.to_owned()),
            "static" => Action::Static(nonempty(arg, name)?),
            "rewrite" => Action::Rewrite(nonempty(arg, name)?, false),
            "rewrite-last" => Action::Rewrite(nonempty(arg, name)?, true),
            "addheader" => {
                if !arg.contains(':') {
                    return Err("addheader takes NAME: VALUE".into());
                }
                Action::AddHeader(arg.to_owned())
            }
            "addvar" => {
                let (k, v) = arg
                    .split_once('=')
                    .filter(|(k, _)| !k.trim().is_empty())
                    .ok_or("addvar takes NAME=VALUE")?;
                Action::SetVar(k.trim().to_owned(), v.to_owned())
            }
            "goto" => Action::Goto(nonempty(arg, name)?.trim().to_owned()),
            set if set_var(set).is_some() => {
                Action::SetVar(set_var(set).unwrap_or_default().to_owned(), arg.to_owned())
            }
            other => {
                return Err(format!(
                    "the routing action \"{other}\" is not supported (rwsgi has redirect, redirect-permanent, return, break, continue, last, basicauth, addheader, addvar, setmethod, seturi, setpathinfo, setscriptname, setremoteaddr, setdocroot, setuser, static, rewrite, rewrite-last, goto and log)"
                ));
            }
        })
    }
}

/// The CGI variable a `set*` action sets (`core/routing.c`).
fn set_var(action: &str) -> Option<&'static str> {
    Some(match action {
        "setmethod" => "REQUEST_METHOD",
        "seturi" => "REQUEST_URI",
        "setpathinfo" => "PATH_INFO",
        "setscriptname" => "SCRIPT_NAME",
        "setremoteaddr" => "REMOTE_ADDR",
        "setdocroot" => "DOCUMENT_ROOT",
        "setuser" => "REMOTE_USER",
        _ => return None,
    })
}

/// Whether a value can go into a response head (no control characters).
fn header_safe(v: &str) -> bool {
    !v.bytes().any(|b| b < 0x20 || b == 0x7f)
}

fn bad_request() -> Decision {
    Decision::Respond(Answer {
        status: "400 Bad Request".into(),
        headers: Vec::new(),
        body: b"Bad Request".to_vec(),
    })
}

fn nonempty(arg: &str, name: &str) -> Result<String, String> {
    let arg = arg.trim();
    if arg.is_empty() {
        return Err(format!("{name} needs a URL"));
    }
    Ok(arg.to_owned())
}

impl Subject {
    /// The regexp's groups (`$0`…`$9`) when it matches.
    fn matches<'a>(&self, var: &impl Fn(&str) -> Option<&'a [u8]>) -> Option<Vec<String>> {
        match self {
            Subject::Always => Some(Vec::new()),
            Subject::Var(name, re) => {
                let value = String::from_utf8_lossy(var(name).unwrap_or_default()).into_owned();
                let caps = re.captures(&value)?;
                Some(
                    caps.iter()
                        .map(|m| m.map_or(String::new(), |m| m.as_str().to_owned()))
                        .collect(),
                )
            }
            Subject::Cond {
                kind,
                args,
                negate,
                re,
            } => {
                let (hit, groups) = condition(*kind, args, re.as_ref(), var);
                (hit != *negate).then_some(groups)
            }
        }
    }
}

fn condition<'a>(
    kind: Cond,
    args: &str,
    re: Option<&Regex>,
    var: &impl Fn(&str) -> Option<&'a [u8]>,
) -> (bool, Vec<String>) {
    let fill = |t: &str| expand(t, &[], var);
    let pair = || {
        let (a, b) = args.split_once(';').unwrap_or((args, ""));
        (fill(a), fill(b))
    };
    let hit = match kind {
        Cond::Equal => {
            let (a, b) = pair();
            a == b
        }
        Cond::StartsWith => {
            let (a, b) = pair();
            a.starts_with(&b)
        }
        Cond::EndsWith => {
            let (a, b) = pair();
            a.ends_with(&b)
        }
        Cond::Contains => {
            let (a, b) = pair();
            a.contains(&b)
        }
        Cond::Regexp => {
            let value = fill(args);
            let Some(re) = re else {
                return (false, Vec::new());
            };
            return match re.captures(&value) {
                Some(caps) => (
                    true,
                    caps.iter()
                        .map(|m| m.map_or(String::new(), |m| m.as_str().to_owned()))
                        .collect(),
                ),
                None => (false, Vec::new()),
            };
        }
        Cond::Empty => fill(args).is_empty(),
        Cond::IsFile => std::path::Path::new(&fill(args)).is_file(),
        Cond::IsDir => std::path::Path::new(&fill(args)).is_dir(),
        Cond::Exists => std::path::Path::new(&fill(args)).exists(),
    };
    (hit, Vec::new())
}

/// `$N` → group N, `${VAR}` → the CGI variable (empty when absent).
fn expand<'a>(t: &str, groups: &[String], var: &impl Fn(&str) -> Option<&'a [u8]>) -> String {
    let mut out = String::with_capacity(t.len());
    let mut rest = t;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(name) = after
            .strip_prefix('{')
            .and_then(|s| s.split_once('}'))
            .map(|(n, _)| n)
        {
            out.push_str(&String::from_utf8_lossy(var(name).unwrap_or_default()));
            rest = &after[name.len() + 2..];
        } else if let Some(d) = after.chars().next().filter(char::is_ascii_digit) {
            let n = d.to_digit(10).unwrap_or(0) as usize;
            out.push_str(groups.get(n).map_or("", String::as_str));
            rest = &after[1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Standard base64 with padding.
fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(A[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(specs: &[(&str, &str)]) -> Rules {
        let specs: Vec<(String, String)> = specs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        Rules::parse(&specs).unwrap()
    }

    fn run(r: &Rules, vars: &[(&str, &str)]) -> Decision {
        r.run(|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.as_bytes())
        })
    }

    #[test]
    fn the_rules_production_configs_use() {
        let r = rules(&[
            (
                "route",
                "^/old/(.*)$ redirect-permanent:/new/$1?from=${HTTP_HOST}",
            ),
            (
                "route-if",
                "equal:${HTTP_X_FORWARDED_PROTO};http redirect:https://${HTTP_HOST}${REQUEST_URI}",
            ),
            ("route", "^/private basicauth:Staff,alice:s3cret"),
            ("route", "^/private continue"),
            ("route-host", "^blocked\\.example$ return:403"),
            (
                "route-if-not",
                "startswith:${PATH_INFO};/ break:400 Bad Path",
            ),
            ("route", "^/drop$ break"),
        ]);
        let get = |vars: &[(&str, &str)]| run(&r, vars);
        let Decision::Respond(a) = get(&[("PATH_INFO", "/old/x/y"), ("HTTP_HOST", "h")]) else {
            panic!("no redirect");
        };
        assert_eq!(a.status, "301 Moved Permanently");
        assert_eq!(a.headers, [("Location".into(), "/new/x/y?from=h".into())]);
        let Decision::Respond(a) = get(&[
            ("PATH_INFO", "/a"),
            ("HTTP_X_FORWARDED_PROTO", "http"),
            ("HTTP_HOST", "site"),
            ("REQUEST_URI", "/a?b"),
        ]) else {
            panic!("no https redirect");
        };
        assert_eq!(
            (a.code(), a.headers[0].1.as_str()),
            (302, "https://site/a?b")
        );
        assert_eq!(
            get(&[("PATH_INFO", "/a"), ("HTTP_X_FORWARDED_PROTO", "https")]),
            Decision::Pass(Passed::default())
        );
        // basicauth: 401 without the credentials, on with them.
        let Decision::Respond(a) = get(&[("PATH_INFO", "/private")]) else {
            panic!("no 401");
        };
        assert_eq!(a.code(), 401);
        assert_eq!(a.headers[0].1, "Basic realm=\"Staff\"");
        let auth = format!("Basic {}", base64(b"alice:s3cret"));
        assert_eq!(auth, "Basic YWxpY2U6czNjcmV0");
        assert_eq!(
            get(&[("PATH_INFO", "/private"), ("HTTP_AUTHORIZATION", &auth)]),
            Decision::Pass(Passed::default())
        );
        let Decision::Respond(a) = get(&[("PATH_INFO", "/x"), ("HTTP_HOST", "blocked.example")])
        else {
            panic!("no 403");
        };
        assert_eq!(
            (a.status.as_str(), a.body.as_slice()),
            ("403 Forbidden", &b"Forbidden"[..])
        );
        let Decision::Respond(a) = get(&[("PATH_INFO", "x")]) else {
            panic!("no 400");
        };
        assert_eq!(a.status, "400 Bad Path");
        assert_eq!(get(&[("PATH_INFO", "/drop")]), Decision::Close);
        // A decoded path cannot put a header into the redirect.
        let Decision::Respond(a) = get(&[("PATH_INFO", "/old/x\rSet-Cookie: a=b")]) else {
            panic!("no answer");
        };
        assert_eq!(a.code(), 400);
        assert_eq!(
            get(&[("PATH_INFO", "/fine")]),
            Decision::Pass(Passed::default())
        );
    }

    #[test]
    fn headers_are_added_to_whatever_answers() {
        let r = rules(&[
            ("route", ".* addheader:X-Frame-Options: DENY"),
            ("route", "^/who addheader:X-Host: ${HTTP_HOST}"),
            ("route", "^/gone return:410"),
            (
                "route",
                "^/favicon\\.ico$ static:/srv/${HTTP_HOST}/favicon.ico",
            ),
        ]);
        assert_eq!(
            run(&r, &[("PATH_INFO", "/who"), ("HTTP_HOST", "h")]),
            Decision::Pass(Passed {
                headers: vec![
                    ("X-Frame-Options".into(), "DENY".into()),
                    ("X-Host".into(), "h".into()),
                ],
                ..Passed::default()
            })
        );
        let Decision::Respond(a) = run(&r, &[("PATH_INFO", "/gone")]) else {
            panic!("no 410");
        };
        assert_eq!(a.headers, [("X-Frame-Options".into(), "DENY".into())]);
        assert_eq!(
            run(&r, &[("PATH_INFO", "/favicon.ico"), ("HTTP_HOST", "h")]),
            Decision::Static(
                "/srv/h/favicon.ico".into(),
                vec![("X-Frame-Options".into(), "DENY".into())]
            )
        );
        let Decision::Respond(a) = run(&r, &[("PATH_INFO", "/who"), ("HTTP_HOST", "a\rb")]) else {
            panic!("no 400");
        };
        assert_eq!(a.code(), 400);
    }

    #[test]
    fn what_rwsgi_does_not_run_is_refused() {
        let bad = |o: &str, v: &str| Rules::parse(&[(o.into(), v.into())]).unwrap_err();
        assert!(bad("route", "^/ setvar:A=b").contains("\"setvar\" is not supported"));
        assert!(bad("route", "^/ goto:nowhere").contains("no route-label = nowhere"));
        assert!(bad("route", "^/ addvar:=x").contains("NAME=VALUE"));
        assert!(bad("route", "^/( return:403").contains("regular expression"));
        assert!(bad("route", "^/x").contains("SUBJECT ACTION"));
        assert!(bad("route-if", "ishigher:1;2 return:403").contains("ishigher"));
        assert!(bad("route", "^/ return:999").contains("status code"));
        assert!(bad("route", "^/ basicauth:realm,/etc/htpasswd").contains("htpasswd"));
        assert!(bad("route", "^/ redirect:").contains("URL"));
    }

    #[test]
    fn a_regexp_condition_gives_its_groups() {
        let r = rules(&[(
            "route-if",
            "regexp:${HTTP_HOST};^(.+)\\.old\\.example$ redirect:https://$1.example${PATH_INFO}",
        )]);
        let Decision::Respond(a) = run(
            &r,
            &[("HTTP_HOST", "shop.old.example"), ("PATH_INFO", "/a")],
        ) else {
            panic!("no redirect");
        };
        assert_eq!(a.headers[0].1, "https://shop.example/a");
        assert_eq!(
            run(&r, &[("HTTP_HOST", "shop.example")]),
            Decision::Pass(Passed::default())
        );
    }

    #[test]
    fn rewrite_changes_what_later_rules_and_the_app_see() {
        let r = rules(&[
            ("route", "^/item/([0-9]+)$ rewrite:/show?id=$1"),
            ("route", "^/show$ addheader:X-Q: ${QUERY_STRING}"),
            ("route-uri", "^/keep rewrite-last:/kept"),
            ("route", "^/kept$ return:410"),
        ]);
        let Decision::Pass(p) = run(&r, &[("PATH_INFO", "/item/5"), ("QUERY_STRING", "")]) else {
            panic!("not passed");
        };
        assert_eq!(p.path_info(), Some("/show"));
        assert_eq!(p.get("QUERY_STRING"), Some(&b"id=5"[..]));
        assert_eq!(p.headers, [("X-Q".into(), "id=5".into())]);
        let mut vars = vec![(b"PATH_INFO".to_vec(), b"/item/5".to_vec())];
        p.apply(&mut vars);
        assert_eq!(
            vars,
            [
                (b"PATH_INFO".to_vec(), b"/show".to_vec()),
                (b"QUERY_STRING".to_vec(), b"id=5".to_vec())
            ]
        );
        // rewrite-last: no later rule runs.
        let Decision::Pass(p) = run(&r, &[("REQUEST_URI", "/keep"), ("PATH_INFO", "/keep")]) else {
            panic!("not passed");
        };
        assert_eq!(p.path_info(), Some("/kept"));
        assert_eq!(p.get("QUERY_STRING"), None);
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(base64(b""), "");
    }

    #[test]
    fn variables_labels_and_goto() {
        let r = rules(&[
            ("route-run", "addvar:APP_TIER=$1gold"),
            ("route-if", "startswith:${PATH_INFO};/api goto:api"),
            ("route-run", "setmethod:GET"),
            ("route-run", "goto:end"),
            ("route-label", "api"),
            ("route", "^/api/(.*)$ setpathinfo:/v2/$1"),
            ("route-run", "addheader:X-Tier: ${APP_TIER}"),
            ("route-label", "end"),
            ("route-if", "equal:${PATH_INFO};/v2/x return:418"),
        ]);
        // /api/...: the label skips setmethod; the new PATH_INFO is seen by
        // the rule after `end`.
        let d = run(&r, &[("PATH_INFO", "/api/x"), ("REQUEST_METHOD", "POST")]);
        let Decision::Respond(a) = d else {
            panic!("{d:?}")
        };
        assert_eq!(
            (a.code(), a.headers.clone()),
            (418, vec![("X-Tier".into(), "gold".into())])
        );
        let Decision::Pass(p) = run(&r, &[("PATH_INFO", "/api/y"), ("REQUEST_METHOD", "POST")])
        else {
            panic!("not passed")
        };
        assert_eq!(p.path_info(), Some("/v2/y"));
        assert_eq!(p.get("REQUEST_METHOD"), None);
        let mut vars = vec![(b"REQUEST_METHOD".to_vec(), b"POST".to_vec())];
        p.apply(&mut vars);
        assert!(vars.contains(&(b"APP_TIER".to_vec(), b"gold".to_vec())));
        // Elsewhere: setmethod, then straight to `end`.
        let Decision::Pass(p) = run(&r, &[("PATH_INFO", "/"), ("REQUEST_METHOD", "POST")]) else {
            panic!("not passed")
        };
        assert_eq!(p.get("REQUEST_METHOD"), Some(&b"GET"[..]));
        assert!(p.headers.is_empty());
        // A goto backwards (a label computed at run time) ends the request.
        let back = rules(&[("route-label", "top"), ("route-run", "goto:${WHERE}")]);
        assert_eq!(run(&back, &[("WHERE", "top")]), Decision::Close);
    }
}
