//! Speed of reading extended XYZ: the streaming frame reader production uses
//! ([`XyzFrames`]) and the first pass over every input ([`pipeline::scan_inputs`]), in MB/s.
//!
//! ```text
//! xyz_read_bench generate N FRAMES SEED OUT.xyz   # benzene-like, 1 species, as `generate` writes it
//! xyz_read_bench read [--threads T] [--repeat R] FILE.xyz...
//! ```
//!
//! `read` prints one CSV row per file: `file,bytes,frames,particles,threads,parse_s,parse_MB_s,
//! scan_s,scan_MB_s,parse_cpu_s` with the best of `R` (default 3) timed passes of each (the
//! file is read once untimed first, so the page cache holds it); `parse_cpu_s` is the least
//! CPU time (all threads, 10 ms ticks) of a parse pass, which other jobs on the machine do
//! not inflate as they do wall time. `--threads` sizes rayon's global pool (default:
//! rayon's own choice, `RAYON_NUM_THREADS` or the number of cores). `scripts/measure_xyz_read.sh`
//! drives it.

use anisoap_candle::pipeline::scan_inputs;
use anisoap_candle::stream::XyzFrames;
use anisoap_candle::synthetic::{generate_frame, SyntheticSpec, SystemKind};
use anisoap_candle::xyz::write_xyz;
use std::path::{Path, PathBuf};
use std::time::Instant;

type Res<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Parses every frame of `path`; returns (frames, particles, a checksum of the positions so
/// the work cannot be optimised away).
fn parse(path: &Path) -> Res<(usize, usize, f64)> {
    let (mut frames, mut particles, mut sum) = (0, 0, 0.0);
    for frame in XyzFrames::open(path)? {
        let frame = frame?;
        frames += 1;
        particles += frame.len();
        sum += frame.positions.first().map_or(0.0, |p| p[0]);
    }
    Ok((frames, particles, sum))
}

/// CPU time (user + system, all threads) of this process so far, in seconds, from
/// `/proc/self/stat` (Linux; clock ticks of 1/100 s, the `USER_HZ` of Linux's ABI); `NaN`
/// elsewhere.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the command name (which is in parentheses and may hold spaces).
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return f64::NAN;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    match (fields.get(11), fields.get(12)) {
        (Some(u), Some(s)) => match (u.parse::<f64>(), s.parse::<f64>()) {
            (Ok(u), Ok(s)) => (u + s) / 100.0,
            _ => f64::NAN,
        },
        _ => f64::NAN,
    }
}

/// Runs `f` `repeat` times; returns the best wall time, the least CPU time of a pass and
/// the last value.
fn best_of<T>(repeat: usize, mut f: impl FnMut() -> Res<T>) -> Res<(f64, f64, T)> {
    let mut best = f64::INFINITY;
    let mut best_cpu = f64::INFINITY;
    let mut last = None;
    for _ in 0..repeat.max(1) {
        let (start, cpu) = (Instant::now(), cpu_seconds());
        let value = f()?;
        best = best.min(start.elapsed().as_secs_f64());
        best_cpu = best_cpu.min(cpu_seconds() - cpu);
        last = Some(value);
    }
    Ok((best, best_cpu, last.expect("at least one repetition")))
}

fn generate(args: &[String]) -> Res<()> {
    let [n, frames, seed, out] = args else {
        return Err("usage: xyz_read_bench generate N FRAMES SEED OUT.xyz".into());
    };
    let spec = SyntheticSpec {
        seed: seed.parse()?,
        ..SyntheticSpec::new(SystemKind::BenzeneLike, n.parse()?)
    };
    spec.validate()?;
    let file = std::fs::File::create(out)?;
    let mut writer = std::io::BufWriter::new(file);
    for k in 0..frames.parse::<usize>()? {
        write_xyz(&mut writer, &[generate_frame(&spec, k)])?;
    }
    Ok(())
}

fn read(args: &[String]) -> Res<()> {
    let mut threads = None;
    let mut repeat = 3;
    let mut files = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--threads" => threads = Some(it.next().ok_or("--threads needs a value")?.parse()?),
            "--repeat" => repeat = it.next().ok_or("--repeat needs a value")?.parse()?,
            _ => files.push(PathBuf::from(arg)),
        }
    }
    if let Some(t) = threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()?;
    }
    let threads = rayon::current_num_threads();
    for path in &files {
        let bytes = std::fs::metadata(path)?.len();
        let _ = std::fs::read(path)?; // warm the page cache
        let (parse_s, parse_cpu_s, (frames, particles, _)) = best_of(repeat, || parse(path))?;
        let (scan_s, _, scan) = best_of(repeat, || Ok(scan_inputs(std::slice::from_ref(path))?))?;
        if scan[0].frames != frames {
            return Err(format!(
                "{}: scan counted {} frames, the parser {frames}",
                path.display(),
                scan[0].frames
            )
            .into());
        }
        let mb = bytes as f64 / 1e6;
        println!(
            "{},{bytes},{frames},{particles},{threads},{parse_s:.4},{:.1},{scan_s:.4},{:.1},\
             {parse_cpu_s:.2}",
            path.display(),
            mb / parse_s,
            mb / scan_s
        );
    }
    Ok(())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("generate") => generate(&args[1..]),
        Some("read") => read(&args[1..]),
        _ => Err(
            "usage: xyz_read_bench generate N FRAMES SEED OUT.xyz | read [--threads T] \
                  [--repeat R] FILE.xyz..."
                .into(),
        ),
    }
}
