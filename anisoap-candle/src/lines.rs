//! Walking the lines of a file in large blocks: the one line walker behind the streaming frame
//! reader ([`crate::stream::XyzFrames`], which also skips frames with it) and the input scan
//! ([`crate::pipeline::scan_inputs`]).
//!
//! A line ends at `\n` (the last one may lack it); [`LineReader`] hands out the bytes before
//! the `\n`. The source is read in blocks of [`BLOCK_BYTES`] into one reused buffer, new lines
//! are found with `memchr`, and nothing is copied per line. Optionally every byte read is
//! hashed (XXH3-128) as it arrives, so one pass both walks and checksums a file.

use std::io::{self, Read};

/// Bytes asked of the source per read.
pub(crate) const BLOCK_BYTES: usize = 1 << 20;

/// Capacity above which the buffer is given back once its lines are consumed (a large frame
/// grows it to the frame's size).
const KEEP_BYTES: usize = 4 * BLOCK_BYTES;

/// Lines of a byte source.
pub(crate) struct LineReader<R> {
    source: R,
    /// `buf[pos..]` holds bytes read but not yet consumed.
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
    /// Lines consumed so far (the 0-based number of the next line).
    line: usize,
    /// Bytes read from the source so far.
    bytes: u64,
    hasher: Option<xxhash_rust::xxh3::Xxh3>,
    /// Size of the whole source when known (a file's length): bounds what a large frame
    /// reserves ahead.
    size: Option<u64>,
}

/// The `io::Error` that `BufRead::read_line` gives for text that is not UTF-8.
pub(crate) fn not_utf8() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "stream did not contain valid UTF-8",
    )
}

/// True for the bytes `char::is_whitespace` accepts among ASCII (`\t \n \v \f \r` and space;
/// unlike `u8::is_ascii_whitespace`, vertical tab included).
pub(crate) fn is_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ')
}

/// Token `k` (0-based) of `line` as `str::split_whitespace` would give it, found on the bytes;
/// `Err(())` when a non-ASCII byte comes before its end (Unicode white space may separate
/// tokens there: split the decoded text instead).
#[allow(clippy::result_unit_err)]
pub(crate) fn ascii_token(line: &[u8], k: usize) -> Result<Option<&[u8]>, ()> {
    let mut i = 0;
    let mut index = 0;
    loop {
        while i < line.len() && is_space(line[i]) {
            i += 1;
        }
        if i == line.len() {
            return Ok(None);
        }
        let start = i;
        while i < line.len() && !is_space(line[i]) {
            if !line[i].is_ascii() {
                return Err(());
            }
            i += 1;
        }
        if index == k {
            return Ok(Some(&line[start..i]));
        }
        index += 1;
    }
}

/// True when `line` is empty or white space only (`str::trim` would leave nothing); text that
/// is not UTF-8 is an error.
pub(crate) fn is_blank(line: &[u8]) -> io::Result<bool> {
    if line.is_ascii() {
        return Ok(line.iter().all(|&b| is_space(b)));
    }
    std::str::from_utf8(line)
        .map(|s| s.trim().is_empty())
        .map_err(|_| not_utf8())
}

/// `line` without the carriage returns that end it (`\r\n` line ends).
pub(crate) fn trim_cr(mut line: &[u8]) -> &[u8] {
    while let [rest @ .., b'\r'] = line {
        line = rest;
    }
    line
}

impl<R: Read> LineReader<R> {
    /// Lines of `source`; with `hash`, every byte read is hashed ([`LineReader::digest128`]).
    pub(crate) fn new(source: R, hash: bool) -> Self {
        LineReader {
            source,
            buf: Vec::with_capacity(BLOCK_BYTES),
            pos: 0,
            eof: false,
            line: 0,
            bytes: 0,
            hasher: hash.then(xxhash_rust::xxh3::Xxh3::new),
            size: None,
        }
    }

    /// Tells the walker the size of the whole source (e.g. the file's length), so that taking
    /// a large frame reserves its bytes once instead of doubling the buffer; a wrong size
    /// costs only memory or copies, never correctness.
    pub(crate) fn with_size(mut self, size: u64) -> Self {
        self.size = Some(size);
        self
    }

    /// Reserves room for `lines` more lines like the `seen` ones of `bytes` bytes, within
    /// what the source has left.
    fn reserve_lines(&mut self, seen: usize, bytes: usize, lines: usize) {
        let (Some(size), true) = (self.size, seen >= 64) else {
            return;
        };
        let unread = usize::try_from(size.saturating_sub(self.bytes)).unwrap_or(usize::MAX);
        let per_line = bytes / seen + 1;
        let wanted = per_line
            .saturating_mul(lines)
            .saturating_add(BLOCK_BYTES)
            .min(unread);
        let free = self.buf.capacity() - self.buf.len();
        if wanted > free {
            self.buf.reserve(wanted);
        }
    }

    /// Lines consumed so far: the 0-based number of the next line.
    pub(crate) fn line_number(&self) -> usize {
        self.line
    }

    /// Bytes read from the source so far (all of it once a walk has reached the end).
    pub(crate) fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// XXH3-128 of the bytes read so far (0 without hashing).
    pub(crate) fn digest128(&self) -> u128 {
        self.hasher.as_ref().map_or(0, |h| h.digest128())
    }

    /// Reads one more block after the unconsumed bytes (moving them to the front first);
    /// `false` at the end of the source.
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let old = self.buf.len();
        let n = (&mut self.source)
            .take(BLOCK_BYTES as u64)
            .read_to_end(&mut self.buf)?;
        if n == 0 {
            self.eof = true;
            return Ok(false);
        }
        if let Some(h) = self.hasher.as_mut() {
            h.update(&self.buf[old..old + n]);
        }
        self.bytes += n as u64;
        Ok(true)
    }

    /// Gives back a buffer that a large frame grew, once all of it is consumed.
    pub(crate) fn release(&mut self) {
        if self.buf.capacity() > KEEP_BYTES && self.buf.len() - self.pos <= BLOCK_BYTES {
            self.buf.drain(..self.pos);
            self.pos = 0;
            self.buf.shrink_to(BLOCK_BYTES);
        }
    }

    /// Where the next line is: `(start, end, next)` in the buffer, `end` before its `\n`,
    /// `next` after it; `None` at the end of the source. Consumes nothing.
    fn find_line(&mut self) -> io::Result<Option<(usize, usize, usize)>> {
        let mut searched = self.pos;
        loop {
            if let Some(k) = memchr::memchr(b'\n', &self.buf[searched..]) {
                let end = searched + k;
                return Ok(Some((self.pos, end, end + 1)));
            }
            searched = self.buf.len() - self.pos;
            if !self.fill()? {
                let len = self.buf.len();
                return Ok((self.pos < len).then_some((self.pos, len, len)));
            }
            // `fill` moved the unconsumed bytes to the front.
            searched += self.pos;
        }
    }

    /// The next line (without its `\n`), consumed; `None` at the end.
    pub(crate) fn next_line(&mut self) -> io::Result<Option<&[u8]>> {
        let Some((start, end, next)) = self.find_line()? else {
            return Ok(None);
        };
        self.pos = next;
        self.line += 1;
        Ok(Some(&self.buf[start..end]))
    }

    /// The next line (without its `\n`), not consumed; `None` at the end.
    pub(crate) fn peek_line(&mut self) -> io::Result<Option<&[u8]>> {
        Ok(self
            .find_line()?
            .map(|(start, end, _)| &self.buf[start..end]))
    }

    /// Skips up to `n` lines; returns how many there were (fewer than `n` at the end). With
    /// `utf8`, skipped text that is not UTF-8 is an error, as reading it would be.
    pub(crate) fn skip_lines(&mut self, n: usize, utf8: bool) -> io::Result<usize> {
        let mut skipped = 0;
        // Unconsumed bytes already searched: the start of a line without its `\n` yet.
        let mut searched = 0;
        while skipped < n {
            let region = &self.buf[self.pos..];
            let mut consumed = 0;
            for k in memchr::memchr_iter(b'\n', &region[searched..]) {
                skipped += 1;
                consumed = searched + k + 1;
                if skipped == n {
                    break;
                }
            }
            if utf8 && std::str::from_utf8(&region[..consumed]).is_err() {
                return Err(not_utf8());
            }
            searched = region.len() - consumed;
            self.pos += consumed;
            if skipped == n {
                break;
            }
            if !self.fill()? {
                // A last line without `\n`.
                if self.pos < self.buf.len() {
                    if utf8 && std::str::from_utf8(&self.buf[self.pos..]).is_err() {
                        return Err(not_utf8());
                    }
                    self.pos = self.buf.len();
                    skipped += 1;
                }
                break;
            }
        }
        self.line += skipped;
        Ok(skipped)
    }

    /// Takes up to `n` lines (fewer at the end) as one span of bytes, consumed, and fills
    /// `ends` with the end of each line in the span (before its `\n`): line `k` is
    /// `span[start..ends[k]]`, `start` being 0 or `ends[k - 1] + 1`.
    pub(crate) fn take_lines(&mut self, n: usize, ends: &mut Vec<usize>) -> io::Result<&[u8]> {
        ends.clear();
        // Offsets relative to `pos` (which `fill` moves to 0, bytes and all).
        let mut searched = 0;
        let mut len = 0;
        while ends.len() < n {
            for k in memchr::memchr_iter(b'\n', &self.buf[self.pos + searched..]) {
                ends.push(searched + k);
                len = searched + k + 1;
                if ends.len() == n {
                    break;
                }
            }
            if ends.len() == n {
                break;
            }
            searched = self.buf.len() - self.pos;
            let left = n - ends.len();
            if left > 4 * ends.len() {
                self.reserve_lines(ends.len(), len, left);
            }
            if !self.fill()? {
                let rest = self.buf.len() - self.pos;
                if rest > len {
                    // A last line without `\n`.
                    ends.push(rest);
                    len = rest;
                }
                break;
            }
        }
        let start = self.pos;
        self.pos += len;
        self.line += ends.len();
        Ok(&self.buf[start..start + len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A source that hands out at most `step` bytes per read, so lines straddle reads.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn reader(data: &[u8], step: usize) -> LineReader<Trickle<'_>> {
        LineReader::new(Trickle { data, step }, true)
    }

    /// Lines as `BufRead::split(b'\n')` gives them.
    fn expected_lines(data: &[u8]) -> Vec<Vec<u8>> {
        io::BufRead::split(data, b'\n')
            .map(|l| l.unwrap())
            .collect()
    }

    #[test]
    fn lines_across_reads_match_bufread() {
        let data = b"3\r\ncomment\n\nH 1 2 3\nlast line without newline";
        for step in [1, 2, 3, 7, 64, BLOCK_BYTES] {
            let mut lines = reader(data, step);
            let mut got = Vec::new();
            assert_eq!(lines.peek_line().unwrap().unwrap(), b"3\r");
            while let Some(line) = lines.next_line().unwrap() {
                got.push(line.to_vec());
            }
            assert_eq!(got, expected_lines(data), "step {step}");
            assert_eq!(lines.line_number(), 5);
            assert_eq!(lines.bytes_read(), data.len() as u64);
            assert_eq!(lines.digest128(), xxhash_rust::xxh3::xxh3_128(data));
            assert!(lines.peek_line().unwrap().is_none());
        }
    }

    #[test]
    fn skip_and_take_count_lines() {
        let data = b"a\nbb\n\nccc\nd";
        for step in [1, 3, 100] {
            let mut lines = reader(data, step);
            assert_eq!(lines.skip_lines(2, true).unwrap(), 2);
            assert_eq!(lines.line_number(), 2);
            let mut ends = Vec::new();
            let span = lines.take_lines(2, &mut ends).unwrap().to_vec();
            assert_eq!(span, b"\nccc\n");
            assert_eq!(ends, [0, 4]);
            // Only one line is left (without `\n`): asking for more gets it alone.
            let span = lines.take_lines(5, &mut ends).unwrap().to_vec();
            assert_eq!((span.as_slice(), ends.as_slice()), (&b"d"[..], &[1][..]));
            assert_eq!(lines.skip_lines(3, true).unwrap(), 0);
            assert_eq!(lines.line_number(), 5);
            assert_eq!(lines.digest128(), xxhash_rust::xxh3::xxh3_128(data));
        }
        // Skipping past the end reports how many lines there were.
        let mut lines = reader(b"x\ny\n", 1);
        assert_eq!(lines.skip_lines(10, false).unwrap(), 2);
    }

    #[test]
    fn utf8_is_checked_only_when_asked() {
        let data = b"ok\n\xff\xfe\nok\n";
        let err = reader(data, 2).skip_lines(3, true).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(reader(data, 2).skip_lines(3, false).unwrap(), 3);
        // A last line without `\n` is checked too.
        assert!(reader(b"ok\n\xff", 1).skip_lines(2, true).is_err());
        assert!(is_blank(b"\xff").is_err());
    }

    #[test]
    fn blank_and_carriage_returns() {
        assert!(is_blank(b"").unwrap());
        assert!(is_blank(b" \t\x0b\x0c\r").unwrap());
        assert!(is_blank("\u{a0}\u{3000}".as_bytes()).unwrap());
        assert!(!is_blank(b" x ").unwrap());
        // U+001C..U+001F are not white space for `str::trim`, nor here.
        assert!(!is_blank(b"\x1c\x1f").unwrap());
        assert_eq!(trim_cr(b"ab\r\r"), b"ab");
        assert_eq!(trim_cr(b"\r"), b"");
        assert_eq!(trim_cr(b"a\rb"), b"a\rb");
    }

    #[test]
    fn the_buffer_shrinks_after_a_large_frame() {
        let line = b"H 0.1 0.2 0.3\n";
        let data: Vec<u8> = line
            .iter()
            .copied()
            .cycle()
            .take(line.len() * 500_000)
            .collect();
        let mut lines = LineReader::new(data.as_slice(), false);
        let mut ends = Vec::new();
        let span_len = lines.take_lines(400_000, &mut ends).unwrap().len();
        assert_eq!(span_len, line.len() * 400_000);
        assert!(lines.buf.capacity() > KEEP_BYTES);
        lines.release();
        assert!(
            lines.buf.capacity() <= 2 * BLOCK_BYTES,
            "{}",
            lines.buf.capacity()
        );
        assert_eq!(lines.skip_lines(usize::MAX, true).unwrap(), 100_000);
    }

    /// A frame that claims far more lines than the source holds reserves no more than the
    /// source's size; a wrong size changes nothing but memory.
    #[test]
    fn reserving_ahead_is_bounded_by_the_source() {
        let line = b"C 0.25 -1 0.5 3\n";
        let data: Vec<u8> = line
            .iter()
            .copied()
            .cycle()
            .take(line.len() * 300_000)
            .collect();
        for size in [data.len() as u64, 1, 2 * data.len() as u64] {
            let mut lines = LineReader::new(data.as_slice(), false).with_size(size);
            let mut ends = Vec::new();
            let span = lines.take_lines(100_000_000, &mut ends).unwrap().to_vec();
            assert_eq!((span, ends.len()), (data.clone(), 300_000));
            assert_eq!(ends[299_999], data.len() - 1);
            if size == data.len() as u64 {
                assert!(
                    lines.buf.capacity() <= data.len() + 4 * BLOCK_BYTES,
                    "{}",
                    lines.buf.capacity()
                );
            }
        }
    }

    proptest! {
        /// Whatever the text and the read sizes, the walker sees the lines `BufRead` sees.
        #[test]
        fn walks_like_bufread(data in prop::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), Just(b'x'), any::<u8>()], 0..200), step in 1usize..9, skip in 0usize..5) {
            let want = expected_lines(&data);
            let mut lines = reader(&data, step);
            let skipped = lines.skip_lines(skip, false).unwrap();
            prop_assert_eq!(skipped, skip.min(want.len()));
            let mut got = Vec::new();
            while let Some(line) = lines.next_line().unwrap() {
                got.push(line.to_vec());
            }
            prop_assert_eq!(&got[..], &want[skipped..]);
            prop_assert_eq!(lines.digest128(), xxhash_rust::xxh3::xxh3_128(&data));
        }

        /// Blank means what `str::trim` leaves empty.
        #[test]
        fn blank_is_trim_empty(text in "[ \t\r\x0b\x0c\x1c\u{85}\u{a0}\u{2028}x]{0,6}") {
            prop_assert_eq!(is_blank(text.as_bytes()).unwrap(), text.trim().is_empty());
        }

        /// Token `k` found on the bytes is `split_whitespace`'s, or the caller is told to
        /// split the text.
        #[test]
        fn ascii_token_is_split_whitespace(text in "[ \t\x0bHx1.\u{a0}\u{e9}]{0,24}", k in 0usize..5) {
            let want = text.split_whitespace().nth(k);
            match ascii_token(text.as_bytes(), k) {
                Ok(token) => prop_assert_eq!(token, want.map(str::as_bytes)),
                Err(()) => prop_assert!(!text.is_ascii()),
            }
        }
    }
}
