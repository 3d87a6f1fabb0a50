//! Pure text formatting and argument parsing for the history commands:
//! durations, sizes, times, the `log` table, ANSI colour and stripping.
//! Nothing here touches the database or the terminal, so all of it is
//! unit-tested with fixed inputs (and a fixed "now").

use std::io::IsTerminal;

use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, TimeZone};

/// Colour on or off, decided once per command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
}

impl Style {
    /// Colour only when stdout is a terminal and `NO_COLOR` is unset or
    /// empty (no-color.org: "when present and not an empty string").
    pub fn detect(config: &crate::config::Config) -> Style {
        Style {
            color: !config.no_color && std::io::stdout().is_terminal(),
        }
    }

    pub const PLAIN: Style = Style { color: false };

    fn paint(&self, sgr: &str, s: &str) -> String {
        if self.color && !s.is_empty() {
            format!("\x1b[{sgr}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    pub fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
    pub fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
    pub fn red(&self, s: &str) -> String {
        self.paint("31", s)
    }
    pub fn green(&self, s: &str) -> String {
        self.paint("32", s)
    }
    pub fn yellow(&self, s: &str) -> String {
        self.paint("33", s)
    }
    pub fn cyan(&self, s: &str) -> String {
        self.paint("36", s)
    }

    /// An execution status, coloured by how it went.
    pub fn status(&self, status: &str, text: &str) -> String {
        match status.trim() {
            "ok" => self.green(text),
            "error" | "died" => self.red(text),
            "skipped" => self.dim(text),
            _ => self.yellow(text),
        }
    }

    /// One line of a unified diff.
    pub fn diff_line(&self, line: &str) -> String {
        if line.starts_with("+++") || line.starts_with("---") {
            self.bold(line)
        } else if line.starts_with('+') {
            self.green(line)
        } else if line.starts_with('-') {
            self.red(line)
        } else if line.starts_with("@@") {
            self.cyan(line)
        } else {
            line.to_string()
        }
    }
}

pub use crate::ansi::strip_ansi;

/// A duration in milliseconds, short: `0.4 ms`, `85 ms`, `1.23 s`, `2m 05s`, `1h 02m`.
pub fn duration_ms(ms: f64) -> String {
    if !ms.is_finite() {
        return "-".into();
    }
    let sign = if ms < 0.0 { "-" } else { "" };
    let ms = ms.abs();
    let body = if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if ms < 60_000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else if ms < 3_600_000.0 {
        let s = (ms / 1000.0).round() as u64;
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        let m = (ms / 60_000.0).round() as u64;
        format!("{}h {:02}m", m / 60, m % 60)
    };
    format!("{sign}{body}")
}

/// A signed duration change: `+1.20 s`, `-85 ms`, `±0 ms`.
pub fn duration_delta_ms(ms: f64) -> String {
    if ms == 0.0 {
        "±0 ms".into()
    } else if ms > 0.0 {
        format!("+{}", duration_ms(ms))
    } else {
        duration_ms(ms)
    }
}

/// Bytes in binary units, as the JupyterLab panel shows them: `512 B`,
/// `12.3 KiB`, `1.5 MiB`, `2.0 GiB` (1 KiB = 1024 B).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1023.95 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A signed size change: `+1.2 MiB`, `-300 B`, `±0 B`.
pub fn bytes_delta(n: i64) -> String {
    match n.signum() {
        0 => "±0 B".into(),
        1 => format!("+{}", bytes(n as u64)),
        _ => format!("-{}", bytes(n.unsigned_abs())),
    }
}

/// A count with thousands separators: `1,234,567`.
pub fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// How long ago `then_ms` was, seen at `now_ms`: `just now`, `42 s ago`,
/// `5 min ago`, `3 h ago`, `2 d ago`, `4 mo ago`, `2 y ago`.
pub fn relative(then_ms: i64, now_ms: i64) -> String {
    let secs = (now_ms - then_ms) / 1000;
    if secs < 0 {
        return "in the future".into();
    }
    match secs {
        0..10 => "just now".into(),
        10..60 => format!("{secs} s ago"),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86_400 => format!("{} h ago", secs / 3600),
        86_400..2_592_000 => format!("{} d ago", secs / 86_400),
        2_592_000..31_536_000 => format!("{} mo ago", secs / 2_592_000),
        _ => format!("{} y ago", secs / 31_536_000),
    }
}

/// A unix-ms time in `tz`: `2024-05-01 14:03:22`.
pub fn time_in<Tz: TimeZone>(ms: i64, tz: &Tz) -> String
where
    Tz::Offset: std::fmt::Display,
{
    match DateTime::from_timestamp_millis(ms) {
        Some(t) => t.with_timezone(tz).format("%Y-%m-%d %H:%M:%S").to_string(),
        None => "-".into(),
    }
}

/// A unix-ms time in local time.
pub fn local_time(ms: i64) -> String {
    time_in(ms, &Local)
}

/// The current time, unix ms.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Parses a duration: a number and a unit, possibly several (`90s`, `30m`,
/// `2h`, `3d`, `2w`, `1h30m`), into milliseconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let n: f64 = num
            .parse()
            .map_err(|_| format!("{s:?} is not a duration (like 90s, 30m, 2h, 3d, 2w)"))?;
        let unit_ms = match unit.trim().to_ascii_lowercase().as_str() {
            "ms" => 1.0,
            "s" | "sec" | "secs" | "second" | "seconds" => 1000.0,
            "m" | "min" | "mins" | "minute" | "minutes" => 60_000.0,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000.0,
            "d" | "day" | "days" => 86_400_000.0,
            "w" | "week" | "weeks" => 604_800_000.0,
            "" => return Err(format!("{s:?} needs a unit: s, m, h, d or w (like 30d)")),
            other => {
                return Err(format!(
                    "unknown unit {other:?} in {s:?} (use s, m, h, d or w)"
                ))
            }
        };
        total += n * unit_ms;
        rest = tail;
    }
    Ok(total.round() as i64)
}

/// Parses a point in time into unix ms: relative (`2h`, `3d`: that long
/// before `now_ms`), `now`, `today`, `yesterday`, an ISO date
/// (`2024-05-01`, local midnight), a local date and time
/// (`2024-05-01 14:00`, `2024-05-01T14:00:05`) or RFC 3339 with an offset.
pub fn parse_time_at<Tz: TimeZone>(s: &str, now_ms: i64, tz: &Tz) -> Result<i64, String> {
    let t = s.trim();
    let local_ms = |naive: NaiveDateTime| -> Result<i64, String> {
        tz.from_local_datetime(&naive)
            .earliest()
            .map(|d| d.timestamp_millis())
            .ok_or_else(|| format!("{t:?} does not exist in the local time zone"))
    };
    let midnight = |offset_days: i64| -> Result<i64, String> {
        let today = DateTime::from_timestamp_millis(now_ms)
            .ok_or("bad clock")?
            .with_timezone(tz)
            .date_naive();
        let day = today - chrono::Duration::days(offset_days);
        local_ms(day.and_hms_opt(0, 0, 0).ok_or("bad date")?)
    };
    match t.to_ascii_lowercase().as_str() {
        "now" => return Ok(now_ms),
        "today" => return midnight(0),
        "yesterday" => return midnight(1),
        _ => {}
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.timestamp_millis());
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return local_ms(d.and_hms_opt(0, 0, 0).ok_or("bad date")?);
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
    ] {
        if let Ok(d) = NaiveDateTime::parse_from_str(t, fmt) {
            return local_ms(d);
        }
    }
    let ago = t.strip_suffix("ago").unwrap_or(t).trim();
    match parse_duration(ago) {
        Ok(ms) => Ok(now_ms - ms),
        Err(_) => Err(format!(
            "{t:?} is not a time: use an ISO date (2024-05-01), a date and time \
             (2024-05-01 14:00), or a time ago (2h, 3d, 1w)"
        )),
    }
}

/// [`parse_time_at`] with the clock and the local time zone (a clap value parser).
pub fn parse_time(s: &str) -> Result<i64, String> {
    parse_time_at(s, now_ms(), &Local)
}

/// Parses a size into bytes: a number with an optional unit, binary like
/// [`bytes`] prints them (`500M` = `500MiB` = 500 × 1024²), or decimal
/// when spelled so (`500MB` = 500,000,000).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (like 500M, 2G, 800K: binary units)"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024f64.powi(2),
        "g" | "gib" => 1024f64.powi(3),
        "t" | "tib" => 1024f64.powi(4),
        other => {
            return Err(format!(
                "unknown size unit {other:?} in {s:?} (use K, M, G, T)"
            ))
        }
    };
    Ok((n * mult).round() as u64)
}

/// The first non-blank line of some code, right-trimmed.
pub fn first_line(code: &str) -> &str {
    code.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim_end()
}

/// Cuts `s` to `width` characters, ending with `…` when it was longer.
pub fn truncate(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(width - 1).collect();
    out.push('…');
    out
}

/// Column alignment in [`table`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// Lays out rows under headers, two spaces between columns. Every column is
/// as wide as its widest cell except the last, which is cut to fit
/// `max_width` when given (a terminal) and left whole otherwise (a pipe).
/// `paint(column, text)` colours a cell after padding, so escape codes never
/// count towards widths.
pub fn table(
    headers: &[(&str, Align)],
    rows: &[Vec<String>],
    max_width: Option<usize>,
    style: Style,
    paint: impl Fn(usize, &str) -> String,
) -> String {
    let n = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|(h, _)| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(n) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let fixed: usize = widths[..n - 1].iter().map(|w| w + 2).sum();
    let last_room = max_width.map(|w| w.saturating_sub(fixed).max(10));
    let pad = |text: &str, i: usize| -> String {
        if i == n - 1 {
            return match last_room {
                Some(room) => truncate(text, room),
                None => text.to_string(),
            };
        }
        let w = widths[i];
        match headers[i].1 {
            Align::Left => format!("{text:<w$}"),
            Align::Right => format!("{text:>w$}"),
        }
    };
    let mut out = String::new();
    let header: Vec<String> = headers
        .iter()
        .enumerate()
        .map(|(i, (h, _))| pad(h, i))
        .collect();
    out.push_str(style.bold(header.join("  ").trim_end()).as_str());
    out.push('\n');
    for row in rows {
        let cells: Vec<String> = (0..n)
            .map(|i| {
                let text = row.get(i).map(String::as_str).unwrap_or("");
                let padded = pad(text, i);
                if style.color {
                    paint(i, &padded)
                } else {
                    padded
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Columns of the terminal on stdout, None when stdout is not a terminal.
pub fn terminal_width() -> Option<usize> {
    if !std::io::stdout().is_terminal() {
        return None;
    }
    if let Some(cols) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse::<usize>().ok())
        .filter(|&c| c > 0)
    {
        return Some(cols);
    }
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ fills a winsize; stdout is a terminal (checked above).
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    if rc == 0 && ws.ws_col > 0 {
        Some(ws.ws_col as usize)
    } else {
        Some(100)
    }
}

/// The size of a MIME payload as Jupyter sent it: base64 image payloads
/// count their decoded bytes (what the image weighs), text its UTF-8 bytes.
pub fn payload_size(mime: &str, value: &serde_json::Value) -> u64 {
    match value {
        serde_json::Value::String(s) if is_base64_mime(mime) => {
            let clean = s.bytes().filter(|b| !b.is_ascii_whitespace()).count() as u64;
            let pad = s
                .trim_end()
                .bytes()
                .rev()
                .take_while(|&b| b == b'=')
                .count() as u64;
            (clean / 4 * 3).saturating_sub(pad)
        }
        serde_json::Value::String(s) => s.len() as u64,
        other => serde_json::to_string(other).map_or(0, |s| s.len() as u64),
    }
}

/// MIME types Jupyter sends base64-encoded (binary images, PDFs…).
pub fn is_base64_mime(mime: &str) -> bool {
    (mime.starts_with("image/") && mime != "image/svg+xml")
        || mime == "application/pdf"
        || mime.starts_with("audio/")
        || mime.starts_with("video/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    #[test]
    fn durations_pick_a_readable_unit() {
        assert_eq!(duration_ms(0.42), "0.4 ms");
        assert_eq!(duration_ms(85.4), "85 ms");
        assert_eq!(duration_ms(1234.0), "1.23 s");
        assert_eq!(duration_ms(125_000.0), "2m 05s");
        assert_eq!(duration_ms(3_720_000.0), "1h 02m");
        assert_eq!(duration_ms(-1500.0), "-1.50 s");
        assert_eq!(duration_ms(f64::NAN), "-");
        assert_eq!(duration_delta_ms(1200.0), "+1.20 s");
        assert_eq!(duration_delta_ms(-85.0), "-85 ms");
        assert_eq!(duration_delta_ms(0.0), "±0 ms");
    }

    #[test]
    fn sizes_are_binary_like_the_panel_shows_them() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(12_595), "12.3 KiB");
        assert_eq!(bytes(1_572_864), "1.5 MiB");
        assert_eq!(bytes(1_048_575), "1.0 MiB");
        assert_eq!(bytes(942_300_000), "898.6 MiB");
        assert_eq!(bytes(2 << 30), "2.0 GiB");
        assert_eq!(bytes_delta(1_258_291), "+1.2 MiB");
        assert_eq!(bytes_delta(-300), "-300 B");
        assert_eq!(bytes_delta(0), "±0 B");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(999), "999");
        assert_eq!(count(-1000), "-1,000");
    }

    #[test]
    fn relative_times() {
        let now = 1_700_000_000_000;
        assert_eq!(relative(now - 3_000, now), "just now");
        assert_eq!(relative(now - 42_000, now), "42 s ago");
        assert_eq!(relative(now - 5 * 60_000, now), "5 min ago");
        assert_eq!(relative(now - 3 * 3_600_000, now), "3 h ago");
        assert_eq!(relative(now - 2 * 86_400_000, now), "2 d ago");
        assert_eq!(relative(now - 100 * 86_400_000, now), "3 mo ago");
        assert_eq!(relative(now - 800 * 86_400_000, now), "2 y ago");
        assert_eq!(relative(now + 60_000, now), "in the future");
    }

    #[test]
    fn times_in_a_zone() {
        let utc = FixedOffset::east_opt(0).unwrap();
        let cest = FixedOffset::east_opt(2 * 3600).unwrap();
        assert_eq!(time_in(0, &utc), "1970-01-01 00:00:00");
        assert_eq!(time_in(1_714_572_202_000, &cest), "2024-05-01 16:03:22");
    }

    #[test]
    fn parses_durations_and_sizes() {
        assert_eq!(parse_duration("30d"), Ok(30 * 86_400_000));
        assert_eq!(parse_duration("2h"), Ok(7_200_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("1.5 s"), Ok(1500));
        assert_eq!(parse_duration("2w"), Ok(14 * 86_400_000));
        assert!(parse_duration("30").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("3 fortnights").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(parse_size("500M"), Ok(500 << 20));
        assert_eq!(parse_size("500MiB"), Ok(500 << 20));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("800k"), Ok(800 * 1024));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5Q").is_err());
    }

    #[test]
    fn parses_points_in_time() {
        let utc = FixedOffset::east_opt(0).unwrap();
        let now = 1_714_572_202_000; // 2024-05-01 14:03:22 UTC
        assert_eq!(parse_time_at("2h", now, &utc), Ok(now - 7_200_000));
        assert_eq!(parse_time_at("3d ago", now, &utc), Ok(now - 3 * 86_400_000));
        assert_eq!(parse_time_at("now", now, &utc), Ok(now));
        assert_eq!(
            parse_time_at("2024-05-01", now, &utc),
            Ok(1_714_521_600_000)
        );
        assert_eq!(parse_time_at("today", now, &utc), Ok(1_714_521_600_000));
        assert_eq!(
            parse_time_at("yesterday", now, &utc),
            Ok(1_714_521_600_000 - 86_400_000)
        );
        assert_eq!(
            parse_time_at("2024-05-01 14:03", now, &utc),
            Ok(1_714_572_180_000)
        );
        assert_eq!(
            parse_time_at("2024-05-01T14:03:22", now, &utc),
            Ok(1_714_572_202_000)
        );
        assert_eq!(
            parse_time_at("2024-05-01T16:03:22+02:00", now, &utc),
            Ok(1_714_572_202_000)
        );
        let cest = FixedOffset::east_opt(2 * 3600).unwrap();
        assert_eq!(
            parse_time_at("2024-05-01", now, &cest),
            Ok(1_714_521_600_000 - 7_200_000)
        );
        assert!(parse_time_at("last tuesday", now, &utc)
            .unwrap_err()
            .contains("not a time"));
    }

    #[test]
    fn lines_and_truncation() {
        assert_eq!(first_line("\n  \nimport os  \nx = 1"), "import os");
        assert_eq!(first_line(""), "");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
        assert_eq!(truncate("été!", 3), "ét…");
    }

    #[test]
    fn table_layout() {
        let headers = [
            ("ID", Align::Right),
            ("STATUS", Align::Left),
            ("CODE", Align::Left),
        ];
        let rows = vec![
            vec!["7".into(), "ok".into(), "print('hello world')".into()],
            vec!["123".into(), "error".into(), "1/0".into()],
        ];
        let t = table(&headers, &rows, None, Style::PLAIN, |_, s| s.to_string());
        assert_eq!(
            t,
            " ID  STATUS  CODE\n  7  ok      print('hello world')\n123  error   1/0\n"
        );
        // On a 20-column terminal the last column is cut (but keeps 10 chars).
        let t = table(&headers, &rows, Some(20), Style::PLAIN, |_, s| {
            s.to_string()
        });
        assert_eq!(t.lines().nth(1).unwrap(), "  7  ok      print('he…");
        // Colour applies after padding, so columns still line up.
        let t = table(&headers, &rows, None, Style { color: true }, |i, s| {
            if i == 1 {
                format!("<{s}>")
            } else {
                s.to_string()
            }
        });
        assert_eq!(t.lines().nth(2).unwrap(), "123  <error >  1/0");
        assert!(t.starts_with("\x1b[1m ID  STATUS  CODE\x1b[0m\n"));
    }

    #[test]
    fn style_paints_only_when_on() {
        assert_eq!(Style::PLAIN.status("error", "error"), "error");
        assert_eq!(
            Style { color: true }.status("ok", "ok"),
            "\x1b[32mok\x1b[0m"
        );
        assert_eq!(Style { color: true }.diff_line("+x"), "\x1b[32m+x\x1b[0m");
        assert_eq!(
            Style { color: true }.diff_line("--- a"),
            "\x1b[1m--- a\x1b[0m"
        );
    }

    #[test]
    fn payload_sizes() {
        use serde_json::json;
        // "aGVsbG8=" is base64 for "hello".
        assert_eq!(payload_size("image/png", &json!("aGVsbG8=")), 5);
        assert_eq!(payload_size("text/plain", &json!("héllo")), 6);
        assert_eq!(payload_size("application/json", &json!({"a": 1})), 7);
    }
}
