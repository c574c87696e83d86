//! A walk over a JPEG's markers, streamed from the file: how many scans it has
//! (each is a pass of the decoder over the whole image) and whether it reaches
//! its end marker (the decoder would pad a truncated file with grey).

use std::io::{self, BufRead};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Structure {
    /// Start-of-scan markers.
    pub scans: usize,
    /// SOI first, EOI reached.
    pub complete: bool,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Expecting SOI's two bytes.
    Soi0,
    Soi1,
    /// Expecting the 0xFF of a marker (other bytes are skipped).
    Marker,
    /// After a 0xFF; `entropy` when it came inside entropy-coded data.
    Code {
        entropy: bool,
    },
    /// A segment's length, high byte then low byte.
    Length0 {
        scan: bool,
    },
    Length1 {
        scan: bool,
        high: u8,
    },
    /// A segment's payload still to skip.
    Skip {
        left: u64,
        scan: bool,
    },
    /// Entropy-coded data after a scan header: up to the next real marker.
    Entropy,
}

/// Reads `reader` to the EOI marker or its end. Linear in the file's size,
/// nothing held but the reader's buffer.
pub(super) fn walk<R: BufRead>(mut reader: R) -> io::Result<Structure> {
    let mut scans = 0;
    let mut state = State::Soi0;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(Structure {
                scans,
                complete: false,
            });
        }
        let mut i = 0;
        while i < buf.len() {
            let byte = buf[i];
            i += 1;
            state = match state {
                State::Soi0 if byte == 0xFF => State::Soi1,
                State::Soi1 if byte == 0xD8 => State::Marker,
                State::Soi0 | State::Soi1 => {
                    return Ok(Structure {
                        scans,
                        complete: false,
                    });
                }
                State::Marker if byte == 0xFF => State::Code { entropy: false },
                State::Marker => State::Marker,
                State::Code { entropy } => match byte {
                    // Fill bytes before a marker.
                    0xFF => State::Code { entropy },
                    // A stuffed 0xFF or a restart marker: still entropy data.
                    0x00 | 0xD0..=0xD7 if entropy => State::Entropy,
                    // Markers without a length (TEM, RSTn, SOI).
                    0x00 | 0x01 | 0xD0..=0xD8 => State::Marker,
                    0xD9 => {
                        return Ok(Structure {
                            scans,
                            complete: true,
                        });
                    }
                    0xDA => {
                        scans += 1;
                        State::Length0 { scan: true }
                    }
                    _ => State::Length0 { scan: false },
                },
                State::Length0 { scan } => State::Length1 { scan, high: byte },
                State::Length1 { scan, high } => {
                    let length = u16::from_be_bytes([high, byte]);
                    if length < 2 {
                        return Ok(Structure {
                            scans,
                            complete: false,
                        });
                    }
                    after_segment(u64::from(length - 2), scan)
                }
                State::Skip { left, scan } => {
                    // This byte and as many more as the buffer holds.
                    let available = (buf.len() - i) as u64;
                    let take = (left - 1).min(available);
                    i += take as usize;
                    after_segment(left - 1 - take, scan)
                }
                State::Entropy => match buf[i - 1..].iter().position(|&b| b == 0xFF) {
                    Some(at) => {
                        i += at;
                        State::Code { entropy: true }
                    }
                    None => {
                        i = buf.len();
                        State::Entropy
                    }
                },
            };
        }
        let consumed = buf.len();
        reader.consume(consumed);
    }
}

fn after_segment(left: u64, scan: bool) -> State {
    match (left, scan) {
        (0, true) => State::Entropy,
        (0, false) => State::Marker,
        (left, scan) => State::Skip { left, scan },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walked(bytes: &[u8]) -> Structure {
        // A tiny buffer so every state is crossed at a buffer's edge.
        walk(io::BufReader::with_capacity(3, bytes)).unwrap()
    }

    #[test]
    fn scans_and_the_end_are_found() {
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE1, 0, 6, b'E', b'x', 0xFF, 0xD9];
        // A scan header, entropy data with a stuffed 0xFF, a restart marker,
        // fill bytes, a second scan, then EOI.
        jpeg.extend_from_slice(&[0xFF, 0xDA, 0, 3, 1, 9, 0xFF, 0, 7, 0xFF, 0xD3, 8]);
        jpeg.extend_from_slice(&[0xFF, 0xFF, 0xDA, 0, 2, 5, 0xFF, 0xD9]);
        assert_eq!(
            walked(&jpeg),
            Structure {
                scans: 2,
                complete: true
            }
        );
        // Cut before EOI.
        assert_eq!(
            walked(&jpeg[..jpeg.len() - 2]),
            Structure {
                scans: 2,
                complete: false
            }
        );
        assert!(!walked(b"GIF89a").complete);
        assert!(!walked(&[0xFF, 0xD8, 0xFF, 0xC0, 0, 1]).complete);
    }
}
