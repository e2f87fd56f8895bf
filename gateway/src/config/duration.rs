//! Durations written as `30s`, `5m`, `8h`, `30d` (or combined: `1h30m`).

use std::time::Duration;

pub fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => {
                return Err(format!(
                    "{s:?}: unknown unit {c:?} (use s, m, h or d, e.g. \"30s\", \"8h\")"
                ));
            }
        };
        let n: u64 = num
            .parse()
            .map_err(|_| format!("{s:?}: expected a number before {c:?}"))?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("{s:?}: too large"))?;
        num.clear();
    }
    if !num.is_empty() {
        return Err(format!("{s:?}: missing unit (use s, m, h or d, e.g. \"30s\")"));
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert_eq!(parse("30s").unwrap().as_secs(), 30);
        assert_eq!(parse("5m").unwrap().as_secs(), 300);
        assert_eq!(parse("8h").unwrap().as_secs(), 8 * 3600);
        assert_eq!(parse("30d").unwrap().as_secs(), 30 * 86400);
        assert_eq!(parse("1h30m").unwrap().as_secs(), 5400);
        for bad in ["", "30", "s", "5x", "-5s", "1.5h"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
