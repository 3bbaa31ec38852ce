//! Text files as they come: UTF-8 with or without a BOM, or Shift_JIS (CP932, as Excel
//! writes it in Japan), decoded to UTF-8 as they stream, a line at a time bounded.

use std::io::{self, Read};

use encoding_rs::{SHIFT_JIS, UTF_8};
use encoding_rs_io::DecodeReaderBytesBuilder;

/// How many bytes are looked at to tell UTF-8 from Shift_JIS.
const SNIFF_BYTES: usize = 64 * 1024;

/// The longest line accepted, in decoded bytes; a longer one is refused, not buffered.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// The encoding of a file, or `Auto` to tell it from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    #[default]
    Auto,
    Utf8,
    ShiftJis,
}

impl Encoding {
    /// `auto`, `utf-8` (`utf8`), `shift_jis` (`sjis`, `cp932`, `windows-31j`).
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().replace('-', "_").as_str() {
            "" | "auto" => Some(Self::Auto),
            "utf_8" | "utf8" => Some(Self::Utf8),
            "shift_jis" | "sjis" | "cp932" | "windows_31j" => Some(Self::ShiftJis),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Utf8 => "utf-8",
            Self::ShiftJis => "shift_jis",
        }
    }
}

/// Why a file cannot be read as text.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TextError {
    #[error("the file holds binary data (a NUL byte at byte {offset}), not CSV text")]
    Binary { offset: usize },
    #[error("line {line} is longer than {MAX_LINE_BYTES} bytes")]
    LineTooLong { line: u64 },
}

impl TextError {
    /// As the I/O error a reader returns, to be found again by [`TextError::of`].
    fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self)
    }

    /// The text error behind an I/O error of [`decode`]'s reader, if it is one.
    pub fn of(error: &io::Error) -> Option<&Self> {
        error.get_ref().and_then(|inner| inner.downcast_ref())
    }
}

/// `input` decoded to UTF-8, with the encoding it was read in. The BOM is dropped; bytes
/// that are not valid in the encoding become U+FFFD, which the row parsers refuse.
pub fn decode<R: Read + Send + 'static>(
    input: R,
    encoding: Encoding,
) -> io::Result<(Box<dyn Read + Send>, Encoding)> {
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    let mut input = input.take(SNIFF_BYTES as u64);
    input.read_to_end(&mut head)?;
    let input = input.into_inner();
    if let Some(offset) = head.iter().position(|&b| b == 0) {
        return Err(TextError::Binary { offset }.into_io());
    }
    let chosen = match encoding {
        Encoding::Auto if head.starts_with(&[0xEF, 0xBB, 0xBF]) => Encoding::Utf8,
        Encoding::Auto => match std::str::from_utf8(&head) {
            Ok(_) => Encoding::Utf8,
            // A character cut at the end of the sniffed bytes is still UTF-8.
            Err(error) if error.error_len().is_none() => Encoding::Utf8,
            Err(_) => Encoding::ShiftJis,
        },
        chosen => chosen,
    };
    let decoder = DecodeReaderBytesBuilder::new()
        .encoding(Some(match chosen {
            Encoding::ShiftJis => SHIFT_JIS,
            _ => UTF_8,
        }))
        .bom_override(true)
        .build(io::Cursor::new(head).chain(input));
    Ok((Box::new(LineLimit::new(decoder)), chosen))
}

/// Refuses a line longer than [`MAX_LINE_BYTES`] as soon as it gets there.
struct LineLimit<R> {
    inner: R,
    line: u64,
    in_line: usize,
}

impl<R> LineLimit<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            line: 1,
            in_line: 0,
        }
    }
}

impl<R: Read> Read for LineLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &b in &buf[..n] {
            if b == b'\n' {
                self.line += 1;
                self.in_line = 0;
            } else {
                self.in_line += 1;
                if self.in_line > MAX_LINE_BYTES {
                    return Err(TextError::LineTooLong { line: self.line }.into_io());
                }
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: Vec<u8>, encoding: Encoding) -> Result<(String, Encoding), io::Error> {
        let (mut text, chosen) = decode(io::Cursor::new(bytes), encoding)?;
        let mut out = String::new();
        text.read_to_string(&mut out)?;
        Ok((out, chosen))
    }

    #[test]
    fn utf8_with_or_without_bom_and_shift_jis_read_the_same() {
        let text = "氏名,住所\n防府 花子,防府市\n";
        let (sjis, _, _) = SHIFT_JIS.encode(text);
        let mut bom = vec![0xEF, 0xBB, 0xBF];
        bom.extend_from_slice(text.as_bytes());
        for (bytes, expected) in [
            (text.as_bytes().to_vec(), Encoding::Utf8),
            (bom, Encoding::Utf8),
            (sjis.into_owned(), Encoding::ShiftJis),
        ] {
            assert_eq!(
                read(bytes, Encoding::Auto).unwrap(),
                (text.to_owned(), expected)
            );
        }
    }

    #[test]
    fn binary_data_and_endless_lines_are_refused_with_where() {
        let error = read(b"PK\x03\x04\x00\x00".to_vec(), Encoding::Auto).unwrap_err();
        assert_eq!(
            TextError::of(&error),
            Some(&TextError::Binary { offset: 4 })
        );
        let mut long = b"a,b\n".to_vec();
        long.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES + 1));
        let error = read(long, Encoding::Auto).unwrap_err();
        assert_eq!(
            TextError::of(&error),
            Some(&TextError::LineTooLong { line: 2 })
        );
    }
}
