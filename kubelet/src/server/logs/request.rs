//! Turning `/containerLogs/{namespace}/{pod}/{container}?…` into a checked
//! request: the path's names as Kubernetes validates them, and the query as
//! the apiserver decodes and validates a v1 `PodLogOptions`.

use cri_client::logs::{LogOptions, StreamFilter};
use jiff::{SignedDuration, Timestamp};

use super::LogsError;

/// The route's prefix.
pub const PREFIX: &str = "/containerLogs";

/// Longest value echoed back in an error message.
const ECHO_MAX: usize = 64;

/// One checked `/containerLogs` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRequest {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub query: LogQuery,
}

/// The v1 `PodLogOptions` the kubelet honours, decoded and validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<u64>,
    pub since_seconds: Option<u64>,
    pub since_time: Option<Timestamp>,
    pub limit_bytes: Option<u64>,
    pub stream: StreamFilter,
}

impl LogQuery {
    /// The reader's options; `sinceSeconds` counts back from `now`.
    pub fn options(&self, now: Timestamp) -> LogOptions {
        let since = self.since_time.or_else(|| {
            self.since_seconds.map(|s| {
                let back = SignedDuration::from_secs(i64::try_from(s).unwrap_or(i64::MAX));
                now.checked_sub(back).unwrap_or(Timestamp::MIN)
            })
        });
        LogOptions {
            tail: self.tail_lines,
            since,
            timestamps: self.timestamps,
            follow: self.follow,
            limit_bytes: self.limit_bytes,
            stream: self.stream,
        }
    }
}

/// Parse and check a request's path and raw (still percent-encoded) query.
pub fn parse(path: &str, query: Option<&str>) -> Result<LogRequest, LogsError> {
    let (namespace, pod, container) = parse_path(path)?;
    let query = parse_query(query.unwrap_or(""))?;
    Ok(LogRequest {
        namespace,
        pod,
        container,
        query,
    })
}

fn bad(msg: impl Into<String>) -> LogsError {
    LogsError::BadRequest(msg.into())
}

/// A value as it is quoted in an error message, cut short when long.
pub(in crate::server) fn echo(s: &str) -> String {
    match s.char_indices().nth(ECHO_MAX) {
        Some((i, _)) => format!("{:?}…", s.get(..i).unwrap_or_default()),
        None => format!("{s:?}"),
    }
}

fn parse_path(path: &str) -> Result<(String, String, String), LogsError> {
    let rest = path
        .strip_prefix(PREFIX)
        .filter(|r| r.is_empty() || r.starts_with('/'))
        .ok_or_else(|| bad(format!("{} is not a /containerLogs path", echo(path))))?;
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let mut parts = rest.split('/');
    let raw: [&str; 3] = std::array::from_fn(|_| parts.next().unwrap_or(""));
    // One trailing slash is tolerated; anything further is not this route.
    let extra: Vec<&str> = parts.collect();
    if !(extra.is_empty() || extra == [""]) {
        return Err(bad(
            "too many path segments: want /containerLogs/{namespace}/{pod}/{container}",
        ));
    }
    let [ns, pod, container] = raw;
    // The order of Go's checks, and its messages.
    if pod.is_empty() {
        return Err(bad(r#"{"message": "Missing podID."}"#));
    }
    if container.is_empty() {
        return Err(bad(r#"{"message": "Missing container name."}"#));
    }
    if ns.is_empty() {
        return Err(bad(r#"{"message": "Missing podNamespace."}"#));
    }
    let ns = segment("namespace", ns)?;
    let pod = segment("pod name", pod)?;
    let container = segment("container name", container)?;
    check_label("namespace", &ns)?;
    check_subdomain("pod name", &pod)?;
    check_label("container name", &container)?;
    Ok((ns, pod, container))
}

/// A percent-decoded path segment that stays one segment.
pub(in crate::server) fn segment(what: &str, raw: &str) -> Result<String, LogsError> {
    let bytes = percent_decode(raw, false)
        .ok_or_else(|| bad(format!("{what} {}: malformed percent-encoding", echo(raw))))?;
    let s =
        String::from_utf8(bytes).map_err(|_| bad(format!("{what} {}: not UTF-8", echo(raw))))?;
    if s == "." || s == ".." || s.contains(['/', '\\', '\0']) {
        return Err(bad(format!(
            "{what} {} may not be '.' or '..' or contain '/'",
            echo(&s)
        )));
    }
    Ok(s)
}

const LABEL_RULE: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric \
     characters or '-', and must start and end with an alphanumeric character";
const SUBDOMAIN_RULE: &str = "a lowercase RFC 1123 subdomain must consist of lower case \
     alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";

fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

pub(in crate::server) fn check_label(what: &str, s: &str) -> Result<(), LogsError> {
    if s.len() > 63 {
        return Err(bad(format!(
            "{what} {} is invalid: must be no more than 63 characters",
            echo(s)
        )));
    }
    if !is_label(s) {
        return Err(bad(format!("{what} {} is invalid: {LABEL_RULE}", echo(s))));
    }
    Ok(())
}

pub(in crate::server) fn check_subdomain(what: &str, s: &str) -> Result<(), LogsError> {
    if s.len() > 253 {
        return Err(bad(format!(
            "{what} {} is invalid: must be no more than 253 characters",
            echo(s)
        )));
    }
    if !s.split('.').all(is_label_part) {
        return Err(bad(format!(
            "{what} {} is invalid: {SUBDOMAIN_RULE}",
            echo(s)
        )));
    }
    Ok(())
}

/// One dot-separated part of a subdomain (no length cap of its own).
fn is_label_part(p: &str) -> bool {
    let b = p.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// `%XX` decoding; in a query, `+` is a space. None on a malformed escape.
fn percent_decode(s: &str, plus_is_space: bool) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(out)
}

/// The first value of each parameter the kubelet reads, as Go's query
/// decoding keeps the first of repeated values. Unknown parameters are
/// ignored, as there.
#[derive(Default)]
struct RawQuery {
    follow: Option<String>,
    previous: Option<String>,
    timestamps: Option<String>,
    tail_lines: Option<String>,
    tail: Option<String>,
    since_seconds: Option<String>,
    since_time: Option<String>,
    limit_bytes: Option<String>,
    stream: Option<String>,
}

fn parse_query(raw: &str) -> Result<LogQuery, LogsError> {
    let mut q = RawQuery::default();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_decode(s, true)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .ok_or_else(|| {
                    bad(format!(
                        "query parameter {}: malformed percent-encoding",
                        echo(k)
                    ))
                })
        };
        let key = decode(k)?;
        let slot = match key.as_str() {
            "follow" => &mut q.follow,
            "previous" => &mut q.previous,
            "timestamps" => &mut q.timestamps,
            "tailLines" => &mut q.tail_lines,
            "tail" => &mut q.tail,
            "sinceSeconds" => &mut q.since_seconds,
            "sinceTime" => &mut q.since_time,
            "limitBytes" => &mut q.limit_bytes,
            "stream" => &mut q.stream,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(decode(v)?);
        }
    }
    // The old `tail` parameter wins over tailLines; `all` means no tail.
    if let Some(tail) = q.tail.take().filter(|t| !t.is_empty()) {
        q.tail_lines = (tail != "all").then_some(tail);
    }
    let tail_lines = int("tailLines", q.tail_lines.as_deref())?;
    let since_seconds = int("sinceSeconds", q.since_seconds.as_deref())?;
    let limit_bytes = int("limitBytes", q.limit_bytes.as_deref())?;
    let since_time = match q.since_time.as_deref() {
        None | Some("") | Some("null") => None,
        Some(s) => Some(s.parse::<Timestamp>().map_err(|_| {
            bad(format!(
                "sinceTime: Invalid value: {}: must be an RFC3339 time, e.g. 2006-01-02T15:04:05Z",
                echo(s)
            ))
        })?),
    };
    let stream = match q.stream.as_deref() {
        None | Some("") | Some("All") => None,
        Some("Stdout") => Some(StreamFilter::Stdout),
        Some("Stderr") => Some(StreamFilter::Stderr),
        Some(other) => {
            return Err(bad(format!(
                r#"stream: Unsupported value: {}: supported values: "All", "Stderr", "Stdout""#,
                echo(other)
            )));
        }
    };

    // ValidatePodLogOptions, every failure reported at once.
    let mut errs = Vec::new();
    if let Some(n) = tail_lines.filter(|n| *n < 0) {
        errs.push(format!(
            "tailLines: Invalid value: {n}: must be greater than or equal to 0"
        ));
    }
    if let Some(n) = limit_bytes.filter(|n| *n < 1) {
        errs.push(format!(
            "limitBytes: Invalid value: {n}: must be greater than 0"
        ));
    }
    if since_seconds.is_some() && since_time.is_some() {
        errs.push("at most one of `sinceTime` or `sinceSeconds` may be specified".to_owned());
    }
    if let Some(n) = since_seconds.filter(|n| *n < 1) {
        errs.push(format!(
            "sinceSeconds: Invalid value: {n}: must be greater than 0"
        ));
    }
    if stream.is_some() && tail_lines.is_some() {
        errs.push(
            "tailLines: Forbidden: `tailLines` and specific `stream` are mutually exclusive for now"
                .to_owned(),
        );
    }
    match errs.len() {
        0 => {}
        1 => return Err(bad(errs.remove(0))),
        _ => return Err(bad(format!("[{}]", errs.join(", ")))),
    }
    let unsigned = |n: Option<i64>| n.and_then(|n| u64::try_from(n).ok());
    Ok(LogQuery {
        follow: boolean(q.follow.as_deref()),
        previous: boolean(q.previous.as_deref()),
        timestamps: boolean(q.timestamps.as_deref()),
        tail_lines: unsigned(tail_lines),
        since_seconds: unsigned(since_seconds),
        since_time,
        limit_bytes: unsigned(limit_bytes),
        stream: stream.unwrap_or_default(),
    })
}

/// An integer parameter; empty means unset, as in Go.
fn int(name: &str, v: Option<&str>) -> Result<Option<i64>, LogsError> {
    match v {
        None | Some("") => Ok(None),
        Some(s) => s.parse::<i64>().map(Some).map_err(|_| {
            bad(format!(
                "{name}: Invalid value: {}: must be an integer",
                echo(s)
            ))
        }),
    }
}

/// A boolean parameter as Go's query decoding reads one: "false" (in any
/// case) and "0" are false, anything else present (even empty, `?follow`)
/// is true.
fn boolean(v: Option<&str>) -> bool {
    match v {
        None => false,
        Some(s) => !(s == "0" || s.eq_ignore_ascii_case("false")),
    }
}
