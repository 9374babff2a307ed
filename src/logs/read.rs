//! Reading logs at disk speed: files, `.gz`, stdin and rotated sets, in constant memory.
//!
//! A reader thread cuts the input into blocks of whole lines; worker threads find candidate
//! lines with one search for all the format's needles at once (Teddy, a SIMD multi-substring
//! search, where the CPU has it), so most lines are never looked at otherwise, and parse them;
//! the caller receives events in log order with exact line numbers.
//! Bounded channels keep at most a few blocks in memory. A line longer than a block makes that
//! block longer, up to [`MAX_LINE`] when streaming (the rest of the line is dropped: memory stays
//! bounded whatever the input); a last line without a newline is still a line.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use super::event::{Clock, Event, ParseCtx};
use super::formats::{First, Format, Parsed, needle_automaton};
use crate::error::InputError;

const BLOCK: usize = 4 << 20;
/// Mapped files are cut in larger blocks: fewer page releases (each one interrupts every core).
const MAP_BLOCK: usize = 8 << 20;
const HEAD: usize = 64 << 10;
/// The longest line kept when reading a stream: the rest of a longer line (a gzip bomb of one
/// endless line, a binary file) is dropped up to its newline, so memory stays bounded.
const MAX_LINE: usize = 4 << 20;
/// The most a gzip log may decompress to: past it the read is an error naming the file.
pub const GZIP_LIMIT: u64 = 64 << 30;

/// Open a log: `-` is stdin; gzip is recognised by its magic bytes.
pub fn open(path: &Path) -> Result<Box<dyn Read + Send>, InputError> {
    let io_err = InputError::io(path);
    let raw: Box<dyn Read + Send> = if path.as_os_str() == "-" {
        Box::new(io::stdin())
    } else {
        // A FIFO or device planted at a log path is refused, never read (see `input`).
        Box::new(crate::input::open_regular(path)?)
    };
    let mut reader = io::BufReader::with_capacity(1 << 16, raw);
    let magic = io::BufRead::fill_buf(&mut reader).map_err(io_err)?;
    if magic.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(Limited {
            inner: flate2::read::MultiGzDecoder::new(reader),
            left: GZIP_LIMIT,
            path: path.to_path_buf(),
        }))
    } else {
        Ok(Box::new(reader))
    }
}

/// A decompressing reader that fails once it has produced `left` bytes.
struct Limited<R> {
    inner: R,
    left: u64,
    path: PathBuf,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(io::Error::other(format!(
                "{} decompresses to more than {} GiB; refusing to read further",
                self.path.display(),
                GZIP_LIMIT >> 30
            )));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Map a plain regular file into memory (gzip and stdin are read instead).
///
/// Appends after mapping are simply not seen; a file truncated while it is read (logrotate's
/// `copytruncate`) would raise SIGBUS, which [`SigbusGuard`] turns into a clear error.
pub fn map_file(path: &Path) -> Result<Option<memmap2::Mmap>, InputError> {
    if path.as_os_str() == "-" {
        return Ok(None);
    }
    let io_err = InputError::io(path);
    let mut file = crate::input::open_regular(path)?;
    let meta = file.metadata().map_err(io_err)?;
    if !meta.is_file() || meta.len() < 2 {
        return Ok(None);
    }
    let mut magic = [0u8; 2];
    file.read_exact(&mut magic).map_err(io_err)?;
    if magic == [0x1f, 0x8b] {
        return Ok(None);
    }
    // SAFETY: the mapping is read-only and private to this process; the only way its contents
    // become invalid is truncation of the file, which SigbusGuard reports and exits on.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_err)?;
    let _ = map.advise(memmap2::Advice::Sequential);
    Ok(Some(map))
}

/// While alive, a SIGBUS (a mapped log truncated under us) prints a clear error and exits 3.
pub struct SigbusGuard {
    old: libc::sigaction,
}

extern "C" fn on_sigbus(_: libc::c_int) {
    const MSG: &[u8] = b"mlsdiag: error: a log file was truncated while it was being read (log rotation?); run again\n";
    // SAFETY: write(2) and _exit(2) are async-signal-safe; MSG is a static buffer.
    unsafe {
        libc::write(2, MSG.as_ptr().cast(), MSG.len());
        libc::_exit(3);
    }
}

impl SigbusGuard {
    pub fn install() -> SigbusGuard {
        // SAFETY: sigaction structs are plain data; all-zero is a valid starting value.
        let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
        new.sa_sigaction = on_sigbus as *const () as usize;
        // SAFETY: as above.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointers to sigaction structs; SIGBUS is a valid signal.
        unsafe { libc::sigaction(libc::SIGBUS, &new, &mut old) };
        SigbusGuard { old }
    }
}

impl Drop for SigbusGuard {
    fn drop(&mut self) {
        // SAFETY: restores the action saved by install().
        unsafe { libc::sigaction(libc::SIGBUS, &self.old, std::ptr::null_mut()) };
    }
}

/// The first bytes of a reader, and a reader that still yields them.
pub fn peek(mut r: Box<dyn Read + Send>) -> io::Result<(Vec<u8>, Box<dyn Read + Send>)> {
    let mut head = vec![0u8; HEAD];
    let mut n = 0;
    while n < HEAD {
        match r.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(n);
    Ok((head.clone(), Box::new(io::Cursor::new(head).chain(r))))
}

/// Order a rotated set (`mls.log`, `mls.log.1`, `mls.log.2.gz` …) by the first timestamp in
/// each file; files without one keep their given order, after the others.
pub fn order_by_first_timestamp(paths: &[PathBuf]) -> Result<Vec<PathBuf>, InputError> {
    if paths.len() < 2 {
        return Ok(paths.to_vec());
    }
    let mut keyed = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        if p.as_os_str() == "-" {
            keyed.push((None, i, p.clone()));
            continue;
        }
        let (head, _) = peek(open(p)?).map_err(InputError::io(p))?;
        let mut clock = Clock::default();
        let first = head
            .split(|&b| b == b'\n')
            .find_map(|l| clock.leading(l).map(|t| t.0));
        keyed.push((first, i, p.clone()));
    }
    keyed.sort_by_key(|(t, i, _)| (t.is_none(), *t, *i));
    Ok(keyed.into_iter().map(|(_, _, p)| p).collect())
}

/// What a scan saw besides events.
#[derive(Debug, Default, Clone)]
pub struct ScanStats {
    pub bytes: u64,
    pub lines: u64,
    /// Unparseable lines (strict mode, or event lines that failed): (line, reason, text).
    pub bad: Vec<(u64, &'static str, String)>,
    pub bad_count: u64,
}

struct BlockResult {
    events: Vec<Event>,
    /// Newlines in the block.
    newlines: u64,
    bytes: u64,
    bad: Vec<(u64, &'static str, String)>,
    bad_count: u64,
    ends_without_newline: bool,
}

const MAX_BAD_KEPT: usize = 100;

/// What a parsing thread keeps from block to block: its parse state.
#[derive(Default)]
struct Scratch {
    ctx: ParseCtx,
}

/// A format's needles, searched for together in one pass over a block.
///
/// Teddy (SIMD, SSSE3/AVX2 or NEON) where the CPU has it; otherwise an Aho-Corasick automaton.
/// Both find the leftmost match, and at one position the needle listed first: so the first
/// match in a line, when it is the first needle, is where that needle first occurs in the line.
enum Needles {
    None,
    Packed(aho_corasick::packed::Searcher),
    Automaton(aho_corasick::AhoCorasick),
}

impl Needles {
    fn new(format: &Format) -> Needles {
        let needles = format.needles();
        if needles.is_empty() {
            return Needles::None;
        }
        let packed = aho_corasick::packed::Config::new()
            .match_kind(aho_corasick::packed::MatchKind::LeftmostFirst)
            .builder()
            .extend(&needles)
            .build();
        if let Some(p) = packed {
            return Needles::Packed(p);
        }
        match needle_automaton(&needles) {
            Ok(a) => Needles::Automaton(a),
            // Not for a loaded format: `Custom::from_toml` refuses needles that make no
            // automaton. Every line would be parsed (more lines than the needles pick).
            Err(_) => Needles::None,
        }
    }

    /// The leftmost match at or after `at`: where it starts, and whether it is the first needle.
    #[inline]
    fn find(&self, block: &[u8], at: usize) -> Option<(usize, bool)> {
        let m = match self {
            Needles::None => return None,
            Needles::Packed(p) => p.find_in(block, aho_corasick::Span::from(at..block.len()))?,
            Needles::Automaton(a) => {
                a.find(aho_corasick::Input::new(block).span(at..block.len()))?
            }
        };
        Some((m.start(), m.pattern().as_usize() == 0))
    }
}

fn parse_block(
    block: &[u8],
    format: &Format,
    needles: &Needles,
    strict: bool,
    scratch: &mut Scratch,
    events: Vec<Event>,
) -> BlockResult {
    let mut r = BlockResult {
        events,
        newlines: 0,
        bytes: block.len() as u64,
        bad: Vec::new(),
        bad_count: 0,
        ends_without_newline: !block.is_empty() && !block.ends_with(b"\n"),
    };
    let ctx = &mut scratch.ctx;
    let mut on_line = |line_idx: u64, line: &[u8], first: First, r: &mut BlockResult| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match format.parse_found(line, first, ctx, &mut r.events) {
            Parsed::Event(_) => {
                if let Some(e) = r.events.last_mut() {
                    e.line = line_idx;
                }
            }
            Parsed::Bad(why) => note_bad(r, line_idx, why, line),
            Parsed::Skip => {
                if strict
                    && !line.is_empty()
                    && !line[0].is_ascii_whitespace()
                    && ctx.clock.leading(line).is_none()
                {
                    note_bad(r, line_idx, "no leading timestamp", line);
                }
            }
        }
    };
    if strict || matches!(needles, Needles::None) {
        let mut start = 0;
        for (i, end) in memchr::memchr_iter(b'\n', block)
            .chain(r.ends_without_newline.then_some(block.len()))
            .enumerate()
        {
            on_line(i as u64, &block[start..end], First::Unknown, &mut r);
            start = end + 1;
        }
        r.newlines = bytecount::count(block, b'\n') as u64;
        return r;
    }
    // `at` is always a line start: the search goes on after the line of each match.
    let (mut at, mut counted_to, mut line_idx) = (0usize, 0usize, 0u64);
    while let Some((pos, is_first)) = needles.find(block, at) {
        let start = memchr::memrchr(b'\n', &block[at..pos]).map_or(at, |p| at + p + 1);
        let first = if is_first {
            First::At(pos - start)
        } else {
            First::Unknown
        };
        line_idx += bytecount::count(&block[counted_to..start], b'\n') as u64;
        counted_to = start;
        let end = memchr::memchr(b'\n', &block[pos..]).map_or(block.len(), |e| pos + e);
        on_line(line_idx, &block[start..end], first, &mut r);
        at = end + 1;
        if at >= block.len() {
            break;
        }
    }
    // Newlines are counted once: up to the last candidate above, the rest here.
    r.newlines = line_idx + bytecount::count(&block[counted_to..], b'\n') as u64;
    r
}

fn note_bad(r: &mut BlockResult, line_idx: u64, why: &'static str, line: &[u8]) {
    r.bad_count += 1;
    if r.bad.len() < MAX_BAD_KEPT {
        let shown = &line[..line.len().min(200)];
        r.bad
            .push((line_idx, why, String::from_utf8_lossy(shown).into_owned()));
    }
}

/// Scan a mapped file: blocks are cut at line ends and parsed in parallel without copying;
/// each parsed block's pages are released from this process, so memory stays constant.
pub fn scan_slice(
    map: &memmap2::Mmap,
    format: &Format,
    strict: bool,
    source: usize,
    mut sink: impl FnMut(&Event),
) -> ScanStats {
    // Only a file mapping may have its pages released (see `release`), hence the type.
    let data: &[u8] = map;
    let (threads, needles) = (parse_threads(), Needles::new(format));
    // Block i runs from the first line start at or after i × BLOCK to the next one; each worker
    // finds its own edges, so no page is touched before its block is parsed.
    let count = data.len().div_ceil(MAP_BLOCK);
    let edge = |i: usize| -> usize {
        if i == 0 {
            return 0;
        }
        let nominal = (i * MAP_BLOCK).min(data.len());
        memchr::memchr(b'\n', &data[nominal - 1..]).map_or(data.len(), |p| nominal + p)
    };
    let next_job = std::sync::atomic::AtomicUsize::new(0);
    let (res_tx, res_rx) = sync_channel::<(usize, BlockResult)>(threads * 2);
    let (spent_tx, spent_rx) = sync_channel::<Vec<Event>>(threads * 4);
    let spent_rx = Mutex::new(spent_rx);
    let (credit_tx, credit_rx) = credits(threads);
    let mut stats = ScanStats::default();
    std::thread::scope(|s| {
        let (needles, next_job, credit_rx) = (&needles, &next_job, &credit_rx);
        // A block is taken with a credit, by the next block index.
        let take = move || {
            if credit_rx
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .recv()
                .is_err()
            {
                return None;
            }
            let i = next_job.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if i >= count {
                return None;
            }
            Some((i, &data[edge(i).min(edge(i + 1))..edge(i + 1)]))
        };
        let work = move |block: &[u8], scratch: &mut Scratch, events: Vec<Event>| {
            let result = parse_block(block, format, needles, strict, scratch, events);
            release(block);
            result
        };
        spawn_parsers(s, threads, &spent_rx, res_tx, take, work);
        reassemble(res_rx, source, &mut stats, &mut sink, &spent_tx, &credit_tx);
        drop(credit_tx);
    });
    stats
}

/// Start `threads` parsing threads in `s`. Each takes jobs from `take` until it yields none,
/// parses each with `work` into a recycled event vector, and sends the result on `res_tx`
/// (dropped here, so the results end when the last thread does).
fn spawn_parsers<'scope, J, T, W>(
    s: &'scope std::thread::Scope<'scope, '_>,
    threads: usize,
    spent_rx: &'scope Mutex<Receiver<Vec<Event>>>,
    res_tx: SyncSender<(usize, BlockResult)>,
    take: T,
    work: W,
) where
    T: Fn() -> Option<(usize, J)> + Clone + Send + 'scope,
    W: Fn(J, &mut Scratch, Vec<Event>) -> BlockResult + Clone + Send + 'scope,
{
    for _ in 0..threads {
        let (res_tx, take, work) = (res_tx.clone(), take.clone(), work.clone());
        s.spawn(move || {
            let mut scratch = Scratch::default();
            while let Some((i, job)) = take() {
                let events = spent_rx
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .try_recv()
                    .unwrap_or_default();
                let result = work(job, &mut scratch, events);
                if res_tx.send((i, result)).is_err() {
                    return;
                }
            }
        });
    }
}

/// Parsing threads: one per core, at most four.
fn parse_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4)
}

/// Credits bound how far parsing may run ahead of the ordered fold: a block is taken only with a
/// credit, and the fold returns one for each block it consumes. Memory stays constant even when
/// one parsing thread is descheduled for a while.
fn credits(threads: usize) -> (std::sync::mpsc::SyncSender<()>, Mutex<Receiver<()>>) {
    let window = threads * 3;
    let (tx, rx) = sync_channel::<()>(window);
    for _ in 0..window {
        let _ = tx.try_send(());
    }
    (tx, Mutex::new(rx))
}

/// Drop a parsed block's whole pages from this process (they stay in the page cache).
fn release(block: &[u8]) {
    const PAGE: usize = 4096;
    // Whole pages, rounded outward: the mapping itself is page-aligned and page-sized.
    let start = (block.as_ptr() as usize) / PAGE * PAGE;
    let end = (block.as_ptr() as usize + block.len()).div_ceil(PAGE) * PAGE;
    if end > start {
        // SAFETY: [start, end) lies inside a read-only private file mapping (page-aligned, its
        // length rounded up to whole pages) that outlives this call; MADV_DONTNEED only drops
        // our page references, and a later read (by a thread working on the neighbouring block
        // that shares an edge page) faults the page back in from the file.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    }
}

/// Hand block results to `sink` in block order, numbering lines across blocks.
fn reassemble(
    res_rx: Receiver<(usize, BlockResult)>,
    source: usize,
    stats: &mut ScanStats,
    sink: &mut impl FnMut(&Event),
    spent: &std::sync::mpsc::SyncSender<Vec<Event>>,
    credit: &std::sync::mpsc::SyncSender<()>,
) {
    let mut pending: BTreeMap<usize, BlockResult> = BTreeMap::new();
    let mut next = 0;
    let mut base_line = 0u64;
    for (i, r) in res_rx {
        pending.insert(i, r);
        while let Some(mut r) = pending.remove(&next) {
            for e in r.events.iter_mut() {
                e.line += base_line + 1;
                e.source = source;
                sink(e);
            }
            r.events.clear();
            let _ = spent.try_send(std::mem::take(&mut r.events));
            for (l, why, text) in r.bad {
                if stats.bad.len() < MAX_BAD_KEPT {
                    stats.bad.push((l + base_line + 1, why, text));
                }
            }
            stats.bad_count += r.bad_count;
            base_line += r.newlines;
            stats.lines += r.newlines + u64::from(r.ends_without_newline);
            stats.bytes += r.bytes;
            next += 1;
            let _ = credit.try_send(());
        }
    }
}

/// A job: block index, buffer, bytes used.
type Job = (usize, Vec<u8>, usize);

/// Read `reader` to the end, calling `sink` with each event in order (line numbers 1-based).
pub fn scan(
    reader: Box<dyn Read + Send>,
    format: &Format,
    strict: bool,
    source: usize,
    mut sink: impl FnMut(&Event),
) -> io::Result<ScanStats> {
    let (threads, needles) = (parse_threads(), Needles::new(format));
    let (job_tx, job_rx) = sync_channel::<Job>(threads * 2);
    let job_rx: Arc<Mutex<Receiver<Job>>> = Arc::new(Mutex::new(job_rx));
    let (res_tx, res_rx) = sync_channel::<(usize, BlockResult)>(threads * 2);
    // Event vectors come back from the ordered fold, so each block reuses warm memory.
    let (spent_tx, spent_rx) = sync_channel::<Vec<Event>>(threads * 4);
    let spent_rx = Mutex::new(spent_rx);
    // Block buffers are recycled: fresh 4 MiB allocations cost more (page zeroing) than parsing.
    let buffers = threads * 2 + 2;
    let (pool_tx, pool_rx) = sync_channel::<Vec<u8>>(buffers);
    let read_error: Mutex<Option<io::Error>> = Mutex::new(None);
    let (credit_tx, credit_rx) = credits(threads);
    let mut stats = ScanStats::default();
    std::thread::scope(|s| {
        let read_error = &read_error;
        let credit_rx = &credit_rx;
        let reader_pool_tx = pool_tx.clone();
        s.spawn(move || {
            read_blocks(
                reader,
                buffers,
                reader_pool_tx,
                pool_rx,
                job_tx,
                credit_rx,
                read_error,
            )
        });
        let (needles, job_rx, parser_pool_tx) = (&needles, Arc::clone(&job_rx), pool_tx.clone());
        let take = move || {
            let job = job_rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
            job.ok().map(|(i, block, len)| (i, (block, len)))
        };
        let work = move |job: (Vec<u8>, usize), scratch: &mut Scratch, events: Vec<Event>| {
            let (block, len) = job;
            let result = parse_block(&block[..len], format, needles, strict, scratch, events);
            let _ = parser_pool_tx.try_send(block);
            result
        };
        spawn_parsers(s, threads, &spent_rx, res_tx, take, work);
        reassemble(res_rx, source, &mut stats, &mut sink, &spent_tx, &credit_tx);
        drop(credit_tx);
    });
    match read_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(stats),
    }
}

/// The reader thread: fills recycled buffers from `reader`, keeps each one's partial last line
/// for the next, and sends every block of whole lines as a job, taking a credit for each.
fn read_blocks(
    mut reader: Box<dyn Read + Send>,
    buffers: usize,
    pool_tx: SyncSender<Vec<u8>>,
    pool_rx: Receiver<Vec<u8>>,
    job_tx: SyncSender<Job>,
    credit_rx: &Mutex<Receiver<()>>,
    read_error: &Mutex<Option<io::Error>>,
) {
    let mut carry: Vec<u8> = Vec::new();
    // Dropping the rest of a line longer than MAX_LINE, up to its newline.
    let mut skipping = false;
    let mut allocated = 0;
    let mut index = 0;
    loop {
        let Some(mut buf) = next_buffer(&pool_rx, &mut allocated, buffers) else {
            return;
        };
        let c = carry.len();
        if buf.len() < c + BLOCK {
            buf.resize(c + BLOCK, 0);
        }
        buf[..c].copy_from_slice(&carry);
        carry.clear();
        let (filled, eof) = fill_buffer(&mut *reader, &mut buf, c, &mut skipping, read_error);
        let mut len = filled;
        if !eof {
            // Keep the partial last line for the next block (a block without any newline
            // is carried whole, so a line longer than a block still arrives whole).
            match memchr::memrchr(b'\n', &buf[..filled]) {
                Some(p) => {
                    carry.extend_from_slice(&buf[p + 1..filled]);
                    len = p + 1;
                    cap_carry(&mut carry, &mut skipping);
                }
                None => {
                    carry.extend_from_slice(&buf[..filled]);
                    cap_carry(&mut carry, &mut skipping);
                    let _ = pool_tx.try_send(buf);
                    continue;
                }
            }
        }
        if len > 0 {
            if credit_rx
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .recv()
                .is_err()
            {
                return;
            }
            if job_tx.send((index, buf, len)).is_err() {
                return;
            }
        }
        index += 1;
        if eof {
            return;
        }
    }
}

/// A recycled block buffer, or a fresh one while fewer than `buffers` exist; `None` once the
/// pool is closed.
#[inline]
fn next_buffer(
    pool_rx: &Receiver<Vec<u8>>,
    allocated: &mut usize,
    buffers: usize,
) -> Option<Vec<u8>> {
    match pool_rx.try_recv() {
        Ok(b) => Some(b),
        Err(_) if *allocated < buffers => {
            *allocated += 1;
            Some(vec![0u8; BLOCK])
        }
        Err(_) => pool_rx.recv().ok(),
    }
}

/// Read into `buf` after its first `filled` bytes until it is full or the input ends; returns
/// the bytes now in `buf` and whether the input ended (a read error is kept in `read_error`
/// and ends it). While `skipping`, what is read up to the next newline is dropped.
#[inline]
fn fill_buffer(
    reader: &mut (dyn Read + Send),
    buf: &mut [u8],
    mut filled: usize,
    skipping: &mut bool,
    read_error: &Mutex<Option<io::Error>>,
) -> (usize, bool) {
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => return (filled, true),
            Ok(n) if *skipping => {
                // Drop what is read up to the long line's newline.
                if let Some(p) = memchr::memchr(b'\n', &buf[filled..filled + n]) {
                    buf.copy_within(filled + p..filled + n, filled);
                    filled += n - p;
                    *skipping = false;
                }
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                *read_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                return (filled, true);
            }
        }
    }
    (filled, false)
}

/// Cut a carried line longer than [`MAX_LINE`], and drop the rest of it as it is read.
#[inline]
fn cap_carry(carry: &mut Vec<u8>, skipping: &mut bool) {
    if carry.len() > MAX_LINE {
        carry.truncate(MAX_LINE);
        *skipping = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_bytes(bytes: Vec<u8>, strict: bool) -> (Vec<Event>, ScanStats) {
        let mut events = Vec::new();
        let stats = scan(
            Box::new(io::Cursor::new(bytes)),
            &Format::Mls,
            strict,
            0,
            |e| events.push(e.clone()),
        )
        .unwrap();
        (events, stats)
    }

    #[test]
    fn line_numbers_survive_blocks_huge_lines_and_a_missing_last_newline() {
        let mut log = Vec::new();
        let mut expect = Vec::new();
        let mut line = 0u64;
        for i in 0..60_000u64 {
            line += 1;
            if i % 7 == 0 {
                log.extend_from_slice(format!("2026-01-05 10:00:00,000 - INFO - Chat completion request: worker=w id={i}\n").as_bytes());
                expect.push((line, i.to_string()));
            } else {
                log.extend_from_slice(b"2026-01-05 10:00:00,000 - INFO - noise noise noise noise noise noise noise noise\n");
            }
            if i == 30_000 {
                // A 6 MB line: longer than a block.
                line += 1;
                log.extend(std::iter::repeat_n(b'x', 6 << 20));
                log.push(b'\n');
            }
        }
        line += 1;
        log.extend_from_slice(b"2026-01-05 10:00:01 Chat completion request: worker=w id=last");
        expect.push((line, "last".into()));
        // The same bytes through the mapped-file path: blocks cut by the workers themselves.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mls.log");
        std::fs::write(&file, &log).unwrap();
        let map = map_file(&file).unwrap().unwrap();
        let mut mapped = Vec::new();
        let mstats = scan_slice(&map, &Format::Mls, false, 0, |e| {
            mapped.push((e.line, e.id.as_ref().unwrap().to_string()))
        });
        assert_eq!(mapped, expect);
        assert_eq!(mstats.lines, line);
        assert_eq!(mstats.bytes, log.len() as u64);
        let (events, stats) = scan_bytes(log, false);
        let got: Vec<(u64, String)> = events
            .iter()
            .map(|e| (e.line, e.id.as_ref().unwrap().to_string()))
            .collect();
        assert_eq!(got, expect);
        assert_eq!(stats.lines, line);
    }

    #[test]
    fn the_scanners_hint_gives_what_parsing_each_line_gives() {
        // Lines where another needle comes before the first one, the first one twice, and
        // the rare needles alone: the scan's position hint must not change any event.
        let lines = [
            "2026-01-05 10:00:00,000 - Worker spawned worker=w pid=2; Chat completion request: worker=w id=a",
            "2026-01-05 10:00:01,000 - Chat completion request: worker=w id=b note=\"Chat completion: x\"",
            "2026-01-05 10:00:02,000 - Prompt processing progress: 5/10 worker=w id=b Chat completion: 3 tokens in 1s (3 tok/s) id=b",
            "2026-01-05 10:00:03,000 - Worker timeout after 600s worker=w id=a",
            "2026-01-05 10:00:04,000 - Prompt processing progress: 1/2 worker=w",
            "2026-01-05 10:00:05,000 - INFO - noise",
            "2026-01-05 10:00:06,000 - Worker exited worker=w pid=2",
        ];
        let log: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let (events, _) = scan_bytes(log.into_bytes(), false);
        let mut ctx = ParseCtx::default();
        let expect: Vec<Event> = lines
            .iter()
            .enumerate()
            .filter_map(|(i, l)| match Format::Mls.parse(l.as_bytes(), &mut ctx) {
                Parsed::Event(mut e) => {
                    e.line = i as u64 + 1;
                    Some(e)
                }
                _ => None,
            })
            .collect();
        assert_eq!(expect.len(), 6);
        assert_eq!(events, expect);
    }

    #[test]
    fn the_simd_search_and_the_automaton_find_the_same_lines() {
        // Where the CPU has no Teddy the automaton searches: both must give the same events,
        // with needles anywhere in a line, twice in a line, and at a block's edges.
        let mut log = String::from("Chat completion request: worker=w id=edge\n");
        for i in 0..3000 {
            log.push_str(&match i % 6 {
                0 => format!("2026-01-05 10:00:00,000 - INFO - Chat completion request: worker=w id={i}\n"),
                1 => format!("2026-01-05 10:00:01,000 - Worker spawned pid={i}; Chat completion: 3 tokens in 1s (3 tok/s) id={}\n", i - 1),
                2 => "2026-01-05 10:00:02,000 - INFO - noise Chat completio\n".to_string(),
                3 => format!("2026-01-05 10:00:03,000 - Prompt processing progress: 1/2 worker=w Worker timeout after 5s id={i}\n"),
                4 => format!("2026-01-05 10:00:04,000 - Chat completion failed: boom id={i} Chat completion: x\n"),
                _ => "\n".to_string(),
            });
        }
        log.push_str("2026-01-05 10:00:05,000 - Worker exited pid=7");
        let block = log.as_bytes();
        let automaton = Needles::Automaton(needle_automaton(&Format::Mls.needles()).unwrap());
        let run = |n: &Needles| {
            let r = parse_block(
                block,
                &Format::Mls,
                n,
                false,
                &mut Scratch::default(),
                Vec::new(),
            );
            (r.events, r.newlines, r.bad_count)
        };
        // Teddy where this CPU has it (SSSE3/AVX2 or NEON), else the automaton again.
        let (events, newlines, bad) = run(&Needles::new(&Format::Mls));
        assert_eq!((events.clone(), newlines, bad), run(&automaton));
        // And the same as parsing every line (the strict path's walk, without its checks).
        let mut ctx = ParseCtx::default();
        let expect: Vec<u64> = log
            .lines()
            .enumerate()
            .filter(|(_, l)| matches!(Format::Mls.parse(l.as_bytes(), &mut ctx), Parsed::Event(_)))
            .map(|(i, _)| i as u64)
            .collect();
        assert_eq!(events.iter().map(|e| e.line).collect::<Vec<_>>(), expect);
        assert_eq!(newlines, 3001);
        assert!(events.len() > 2000, "{}", events.len());
    }

    #[test]
    fn an_empty_prefilter_string_makes_every_line_a_candidate() {
        // An empty needle is in every line; lines are counted once each, whatever the blocks.
        let toml = "prefilter = [\"\", \"never\"]\n[start]\nregex = '^(?P<ts>\\S+ \\S+) go (?P<id>\\S+)'\n";
        let custom = crate::logs::formats::Custom::from_toml(toml, Path::new("t.toml")).unwrap();
        let format = Format::Custom(Box::new(custom));
        let log: String = (0..160_000)
            .map(|i| format!("2026-01-05 10:00:00 go r{i}\n"))
            .collect(); // 5 MB: two blocks
        let mut ids = Vec::new();
        let stats = scan(
            Box::new(io::Cursor::new(log.into_bytes())),
            &format,
            false,
            0,
            |e| ids.push((e.line, e.id.as_deref().unwrap_or_default().to_string())),
        )
        .unwrap();
        assert_eq!(stats.lines, 160_000);
        assert_eq!(ids.len(), 160_000);
        assert_eq!(ids[159_999], (160_000, "r159999".to_string()));
    }

    #[test]
    fn invalid_utf8_and_strict_reports() {
        let mut log =
            b"2026-01-05 10:00:00 Chat completion request: worker=w id=1 \xff\xfe\n".to_vec();
        log.extend_from_slice(b"garbage \x00\x01 without a time\n  indented traceback line\n");
        log.extend_from_slice(b"2026-01-05 10:00:02 Chat completion: broken\n");
        let (events, stats) = scan_bytes(log.clone(), false);
        assert_eq!(events.len(), 1);
        assert_eq!(
            stats.bad_count, 1,
            "the broken completion line is reported even without --strict"
        );
        let (_, strict) = scan_bytes(log, true);
        let lines: Vec<u64> = strict.bad.iter().map(|b| b.0).collect();
        assert_eq!(lines, [2, 4], "{:?}", strict.bad);
    }

    #[test]
    fn gzip_and_rotation_order() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let newer = dir.path().join("mls.log");
        let older = dir.path().join("mls.log.1.gz");
        std::fs::write(
            &newer,
            "2026-01-05 12:00:00 Chat completion: 5 tokens in 1s (5 tok/s) worker=w\n",
        )
        .unwrap();
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&older).unwrap(),
            flate2::Compression::fast(),
        );
        gz.write_all(b"2026-01-05 11:00:00 Chat completion request: worker=w\n")
            .unwrap();
        gz.finish().unwrap();
        let order = order_by_first_timestamp(&[newer.clone(), older.clone()]).unwrap();
        assert_eq!(order, [older.clone(), newer]);
        let mut n = 0;
        scan(open(&older).unwrap(), &Format::Mls, false, 0, |_| n += 1).unwrap();
        assert_eq!(n, 1);
        let err = open(&dir.path().join("missing.log"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("missing.log"), "{err}");
    }
}
