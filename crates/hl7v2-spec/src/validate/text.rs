//! Building the findings' paths and sentences by appending to one string,
//! without the formatting machinery (`format!`) or intermediate strings:
//! every field finding needs a path suffix and a sentence, and a message
//! with many findings builds hundreds of them.

/// Appends `n` in decimal.
pub(crate) fn push_num(out: &mut String, n: usize) {
    push_padded(out, n, 1);
}

/// Appends `n` in decimal, with leading zeros to at least `width` digits
/// (what `{n:0width$}` writes).
pub(crate) fn push_padded(out: &mut String, mut n: usize, width: usize) {
    let mut digits = [0u8; 20];
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for _ in len..width {
        out.push('0');
    }
    for &d in digits[..len].iter().rev() {
        out.push(char::from(d));
    }
}

/// Appends a repetition index, `[n]`.
pub(crate) fn push_index(out: &mut String, n: usize) {
    out.push('[');
    push_num(out, n);
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_format_writes_them() {
        for n in [
            0,
            1,
            9,
            10,
            42,
            99,
            100,
            396,
            1000,
            65535,
            123_456_789,
            usize::MAX,
        ] {
            let mut s = String::new();
            push_num(&mut s, n);
            assert_eq!(s, n.to_string());
            for width in [0, 1, 4, 6] {
                let mut s = String::from("x");
                push_padded(&mut s, n, width);
                assert_eq!(s, format!("x{n:0width$}"));
            }
            let mut s = String::new();
            push_index(&mut s, n);
            assert_eq!(s, format!("[{n}]"));
        }
    }
}
