//! ANSI terminal escapes: kernels colour tracebacks with them (IPython's
//! `[31mZeroDivisionError`), which only a terminal can render. Views that
//! are not a colour terminal (a pipe, a diff) show the text without them.

/// Removes ANSI escape sequences (CSI `ESC [ … final`, OSC `ESC ] … BEL|ST`,
/// and two-byte escapes), as IPython puts colour into tracebacks.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('[') => {
                // Parameters and intermediates, then one final byte 0x40–0x7E.
                for c in chars.by_ref() {
                    if ('\x40'..='\x7e').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\x07' {
                        break;
                    }
                    if c == '\x1b' && chars.peek() == Some(&'\\') {
                        chars.next();
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_ansi_escapes() {
        let tb = "\x1b[0;31mNameError\x1b[0m: name \x1b[1;32m'x'\x1b[0m is not defined";
        assert_eq!(strip_ansi(tb), "NameError: name 'x' is not defined");
        // OSC 8 hyperlink, ended by ST and by BEL.
        assert_eq!(
            strip_ansi("\x1b]8;;file:///a.py\x1b\\a.py\x1b]8;;\x07 line 3"),
            "a.py line 3"
        );
        assert_eq!(strip_ansi("plain ✓"), "plain ✓");
        assert_eq!(strip_ansi("cut\x1b["), "cut");
    }
}
