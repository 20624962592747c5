//! Speed of reading extended XYZ: the streaming frame reader production uses
//! ([`XyzFrames`]) and the first pass over every input ([`pipeline::scan_inputs`]), in MB/s.
//!
//! ```text
//! xyz_read_bench generate N FRAMES SEED OUT.xyz   # benzene-like, 1 species, as `generate` writes it
//! xyz_read_bench read [--threads T] [--repeat R] FILE.xyz...
//! ```
//!
//! `read` prints one CSV row per file: `file,bytes,frames,particles,threads,parse_s,parse_MB_s,
//! scan_s,scan_MB_s` with the best of `R` (default 3) timed passes of each (the file is read
//! once untimed first, so the page cache holds it). `--threads` sizes rayon's global pool (default:
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

fn best_of<T>(repeat: usize, mut f: impl FnMut() -> Res<T>) -> Res<(f64, T)> {
    let mut best = f64::INFINITY;
    let mut last = None;
    for _ in 0..repeat.max(1) {
        let start = Instant::now();
        let value = f()?;
        best = best.min(start.elapsed().as_secs_f64());
        last = Some(value);
    }
    Ok((best, last.expect("at least one repetition")))
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
        let (parse_s, (frames, particles, _)) = best_of(repeat, || parse(path))?;
        let (scan_s, scan) = best_of(repeat, || Ok(scan_inputs(std::slice::from_ref(path))?))?;
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
            "{},{bytes},{frames},{particles},{threads},{parse_s:.4},{:.1},{scan_s:.4},{:.1}",
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
