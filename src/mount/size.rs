//! Sizes as people type them. Every unit is binary: `K`, `KB` and `KiB` all mean 1024 bytes,
//! `M` 1024², `G` 1024³, `T` 1024⁴, so `25G` is 25 GiB. A fraction such as `1.5G` is allowed
//! and rounded down to whole bytes; a bare number is bytes.

/// Why a size was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid size {input:?}: {reason}; write e.g. 25G, 512MiB, 1.5G or a number of bytes")]
pub struct SizeError {
    pub input: String,
    pub reason: &'static str,
}

/// Parse `25G`, `64M`, `512MiB`, `1.5G`, `100B` or `1000` into bytes.
pub fn parse_size(input: &str) -> Result<u64, SizeError> {
    let err = |reason| SizeError { input: input.to_owned(), reason };
    let s = input.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let shift = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(err("unknown unit (use K, M, G or T)")),
    };
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && frac.is_empty() {
        return Err(err("no number"));
    }
    if frac.contains('.') || frac.len() > 9 {
        return Err(err("malformed number"));
    }
    let digits = format!("{whole}{frac}");
    let mantissa: u128 = digits.parse().map_err(|_| err("malformed number"))?;
    let scaled = (mantissa << shift) / 10u128.pow(u32::try_from(frac.len()).unwrap_or(9));
    u64::try_from(scaled).map_err(|_| err("too large"))
}

/// `1.5 GiB`, `64.0 MiB`, `512 B`: one decimal, binary units.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = u128::from(bytes) * 10 / 1024;
    let mut unit = 0;
    while value >= 10 * 1024 && unit + 1 < UNITS.len() {
        value /= 1024;
        unit += 1;
    }
    format!("{}.{} {}", value / 10, value % 10, UNITS[unit])
}

/// `bytes` as a `--size` argument that slipway parses back to at least `bytes`: whole MiB,
/// rounded up, or whole GiB when exact (`43M`, `25G`).
pub fn size_arg_up(bytes: u64) -> String {
    if bytes > 0 && bytes.is_multiple_of(1 << 30) {
        return format!("{}G", bytes >> 30);
    }
    format!("{}M", bytes.div_ceil(1 << 20))
}

/// `used` as a percentage of `limit` with one decimal, rounded down (0 for no limit).
pub fn percent(used: u64, limit: u64) -> f64 {
    if limit == 0 {
        return 0.0;
    }
    let tenths = u128::from(used) * 1000 / u128::from(limit);
    // At most u64::MAX * 1000, and a percentage beyond 2^52 is meaningless anyway.
    #[allow(clippy::cast_precision_loss)]
    let tenths = u64::try_from(tenths).unwrap_or(u64::MAX) as f64;
    tenths / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_binary_units_fractions_and_bytes() {
        assert_eq!(parse_size("25G").unwrap(), 25 << 30);
        assert_eq!(parse_size("64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert_eq!(parse_size("100B").unwrap(), 100);
        assert_eq!(parse_size("2 gb").unwrap(), 2 << 30);
        assert_eq!(parse_size("1T").unwrap(), 1 << 40);
        assert_eq!(parse_size("0.5k").unwrap(), 512);
        assert_eq!(parse_size(".5K").unwrap(), 512);
    }

    #[test]
    fn refuses_malformed_sizes() {
        for bad in ["", "G", "-1G", "1.2.3G", "12X", "1e9", "99999999999T", "1..G", "."] {
            assert!(parse_size(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(parse_size("5Q").unwrap_err().to_string().contains("unknown unit"));
    }

    #[test]
    fn formats_sizes_for_people() {
        assert_eq!(format_size(512), "512 B");
        assert_eq!(format_size(64 << 20), "64.0 MiB");
        assert_eq!(format_size(3 << 29), "1.5 GiB");
        assert_eq!(format_size(25 << 30), "25.0 GiB");
    }

    #[test]
    fn size_arguments_round_up_to_whole_mebibytes() {
        assert_eq!(size_arg_up(25 << 30), "25G");
        assert_eq!(size_arg_up(64 << 20), "64M");
        assert_eq!(size_arg_up((43 << 20) - 5), "43M");
        assert_eq!(size_arg_up((43 << 20) + 1), "44M");
        assert!(parse_size(&size_arg_up(123_456_789)).unwrap() >= 123_456_789);
    }

    #[test]
    fn percent_rounds_down_to_tenths() {
        assert!((percent(0, 100) - 0.0).abs() < f64::EPSILON);
        assert!((percent(1, 3) - 33.3).abs() < 1e-9);
        assert!((percent(150, 100) - 150.0).abs() < 1e-9);
        assert!((percent(5, 0) - 0.0).abs() < f64::EPSILON);
    }
}
