//! `generate` subcommand: writes seeded synthetic systems of ellipsoids as extended XYZ.

use std::io::Write;
use std::path::{Path, PathBuf};

use anisoap_candle::synthetic::{generate, SyntheticSpec, SystemKind};
use anisoap_candle::{elements, rotation, Frame, PerParticle};
use anyhow::{bail, Context};

/// Kind of synthetic system, as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Liquid of prolate ellipsoids (full diameters ~1 x 1 x 3, reduced units) at random
    /// positions; default density 0.3 per unit volume.
    Liquid,
    /// Disc-like benzene-like molecules (full diameters ~3.5 x 3.5 x 1.2, Å-like units) on a
    /// jittered lattice; default density 0.02 per Å³ (about 30 neighbours within 7 Å).
    Benzene,
}

impl From<Kind> for SystemKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Liquid => SystemKind::EllipsoidLiquid,
            Kind::Benzene => SystemKind::BenzeneLike,
        }
    }
}

/// Arguments of `anisoap-candle generate`.
///
/// Writes `--frames` frames of a random (but seeded, hence reproducible) system of ellipsoids
/// to an extended XYZ file with the columns the descriptor reads: `species`, `pos`, `c_q`
/// (unit quaternion w, x, y, z) and `c_diameter[1..3]` (full axis lengths).
#[derive(clap::Args, Debug)]
#[command(
    about = "Write seeded synthetic systems of ellipsoids (extended XYZ) for tests and benchmarks",
    after_help = "Example:\n  anisoap-candle generate --kind benzene --particles 200 --species 2 \
                  --frames 3 --seed 7 --output benzene.xyz\n\n\
                  The same seed gives the same positions, orientations and axes whatever \
                  --species is, so files with 1 to 4 species differ only in their labels."
)]
pub struct GenerateArgs {
    /// Kind of system: `liquid` (prolate ellipsoids ~1x1x3) or `benzene` (discs ~3.5x3.5x1.2).
    #[arg(long, value_enum, default_value_t = Kind::Liquid)]
    pub kind: Kind,

    /// Number of particles in each frame.
    #[arg(long, short = 'n', default_value_t = 100)]
    pub particles: usize,

    /// Number of species (1 to 4), labelled H, C, N, O. Every species appears in every frame
    /// as long as there are at least as many particles as species.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=4))]
    pub species: u8,

    /// Number of frames to write (frame k uses its own random streams derived from the seed).
    #[arg(long, default_value_t = 1)]
    pub frames: usize,

    /// Seed of the random number generator; the same seed always gives the same file.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Periodic cubic box (writes `Lattice` and `pbc="T T T"`). This is the default.
    #[arg(long, conflicts_with = "open")]
    pub periodic: bool,

    /// Open (non-periodic) system: no cell; the particles stay in the same cube.
    #[arg(long)]
    pub open: bool,

    /// Number density in particles per volume unit; the cube's side is
    /// (particles / density)^(1/3). Default: 0.3 for `liquid`, 0.02 for `benzene`.
    #[arg(long)]
    pub density: Option<f64>,

    /// How `c_q` holds the orientations: `quaternion` (4 columns w, x, y, z) or `matrix` (the
    /// same rotations as 3x3 matrices, 9 columns row-major, for `rotation_type = "matrix"`).
    #[arg(long, value_enum, default_value_t = Orientation::Quaternion)]
    pub orientation: Orientation,

    /// Tilt the periodic box into a triclinic cell: `XY,XZ,YZ` as fractions of the side L give
    /// the cell rows a = (L, 0, 0), b = (XY L, L, 0), c = (XZ L, YZ L, L) (same volume); the
    /// positions keep their fractional coordinates.
    #[arg(long, value_name = "XY,XZ,YZ", value_parser = parse_three, allow_hyphen_values = true)]
    pub tilt: Option<[f64; 3]>,

    /// Periodicity of the cell along a, b, c: `T,T,F`, `TTF` or "T T F" (needs a periodic box;
    /// default all T). The cell stays in `Lattice`.
    #[arg(long, value_name = "T,T,F", value_parser = parse_pbc)]
    pub pbc: Option<[bool; 3]>,

    /// Translate every particle of a species, `SYMBOL:DX,DY,DZ` (repeatable). In an open
    /// system, a shift larger than the box and the cutoff separates that species from the others
    /// (its centres then see only their own type).
    #[arg(long, value_name = "SYMBOL:DX,DY,DZ", value_parser = parse_shift, allow_hyphen_values = true)]
    pub shift_species: Vec<(i32, [f64; 3])>,

    /// Relabel, in one frame, every particle of one species as another: `FRAME:FROM:TO`
    /// (repeatable; frames counted from 0), e.g. `1:C:H` leaves frame 1 without C.
    #[arg(long, value_name = "FRAME:FROM:TO", value_parser = parse_relabel)]
    pub relabel: Vec<(usize, i32, i32)>,

    /// Output file (extended XYZ); written atomically, replacing any existing file.
    /// Use `-` for standard output.
    #[arg(long, short = 'o')]
    pub output: PathBuf,
}

/// How the orientations are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Orientation {
    /// Unit quaternions (w, x, y, z), 4 columns.
    Quaternion,
    /// Rotation matrices, 9 columns row-major.
    Matrix,
}

fn parse_three(text: &str) -> Result<[f64; 3], String> {
    let values: Vec<f64> = text
        .split(',')
        .map(|v| {
            v.trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| format!("{v:?} is not a finite number"))
        })
        .collect::<Result<_, _>>()?;
    <[f64; 3]>::try_from(values)
        .map_err(|v| format!("expected 3 comma-separated numbers, got {}", v.len()))
}

fn parse_pbc(text: &str) -> Result<[bool; 3], String> {
    let tokens: Vec<String> = if text.contains([',', ' ']) {
        text.split([',', ' '])
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect()
    } else {
        // "TTF"
        text.chars().map(String::from).collect()
    };
    let values: Vec<bool> = tokens
        .iter()
        .map(|v| match v.as_str() {
            "T" | "t" | "True" | "true" | "1" => Ok(true),
            "F" | "f" | "False" | "false" | "0" => Ok(false),
            other => Err(format!("{other:?} is not T or F")),
        })
        .collect::<Result<_, _>>()?;
    <[bool; 3]>::try_from(values)
        .map_err(|v| format!("expected 3 values (T or F), got {}", v.len()))
}

fn parse_species(symbol: &str) -> Result<i32, String> {
    elements::atomic_number(symbol.trim()).ok_or_else(|| format!("unknown species {symbol:?}"))
}

fn parse_shift(text: &str) -> Result<(i32, [f64; 3]), String> {
    let (symbol, vector) = text
        .split_once(':')
        .ok_or_else(|| "expected SYMBOL:DX,DY,DZ".to_string())?;
    Ok((parse_species(symbol)?, parse_three(vector)?))
}

fn parse_relabel(text: &str) -> Result<(usize, i32, i32), String> {
    let parts: Vec<&str> = text.split(':').collect();
    let [frame, from, to] = parts[..] else {
        return Err("expected FRAME:FROM:TO".into());
    };
    let frame = frame
        .trim()
        .parse::<usize>()
        .map_err(|_| format!("{frame:?} is not a frame index"))?;
    Ok((frame, parse_species(from)?, parse_species(to)?))
}

impl GenerateArgs {
    /// The synthetic-system spec these arguments describe.
    pub fn spec(&self) -> SyntheticSpec {
        let kind = SystemKind::from(self.kind);
        SyntheticSpec {
            kind,
            n_particles: self.particles,
            n_species: self.species as usize,
            periodic: !self.open,
            density: self.density.unwrap_or_else(|| kind.default_density()),
            seed: self.seed,
        }
    }
}

/// Applies the options that edit the generated frames (`--orientation`, `--tilt`, `--pbc`,
/// `--shift-species`, `--relabel`), in that order.
fn edit_frames(args: &GenerateArgs, frames: &mut [Frame]) -> anyhow::Result<()> {
    if (args.tilt.is_some() || args.pbc.is_some()) && args.open {
        bail!("invalid arguments: --tilt and --pbc need a periodic box (not --open)");
    }
    for &(index, _, _) in &args.relabel {
        if index >= frames.len() {
            bail!(
                "invalid arguments: --relabel frame {index} does not exist ({} frames)",
                frames.len()
            );
        }
    }
    for (index, frame) in frames.iter_mut().enumerate() {
        if args.orientation == Orientation::Matrix {
            let q = frame.arrays["c_q"].clone();
            let mut values = Vec::with_capacity(9 * frame.len());
            for i in 0..frame.len() {
                let r = q.row(i);
                let m = rotation::quaternion_to_matrix([r[0], r[1], r[2], r[3]])
                    .context("generated a zero quaternion")?;
                values.extend(m.iter().flatten());
            }
            frame
                .arrays
                .insert("c_q".into(), PerParticle { ncols: 9, values });
        }
        if let Some([xy, xz, yz]) = args.tilt {
            let side = frame.cell[0][0];
            let cell = [
                [side, 0.0, 0.0],
                [xy * side, side, 0.0],
                [xz * side, yz * side, side],
            ];
            for p in &mut frame.positions {
                let s = p.map(|x| x / side);
                *p = [0, 1, 2].map(|k| s[0] * cell[0][k] + s[1] * cell[1][k] + s[2] * cell[2][k]);
            }
            frame.cell = cell;
        }
        if let Some(pbc) = args.pbc {
            frame.pbc = pbc;
        }
        for (species, shift) in &args.shift_species {
            for (p, &z) in frame.positions.iter_mut().zip(&frame.numbers) {
                if z == *species {
                    for (x, d) in p.iter_mut().zip(shift) {
                        *x += d;
                    }
                }
            }
        }
        for &(_, from, to) in args.relabel.iter().filter(|r| r.0 == index) {
            for z in &mut frame.numbers {
                if *z == from {
                    *z = to;
                }
            }
        }
    }
    Ok(())
}

/// Runs the `generate` subcommand.
pub fn run(args: &GenerateArgs) -> anyhow::Result<()> {
    let spec = args.spec();
    spec.validate()
        .map_err(|message| anyhow::anyhow!("invalid arguments: {message}"))?;
    anyhow::ensure!(
        args.frames >= 1,
        "invalid arguments: --frames must be at least 1"
    );
    let mut frames = generate(&spec, args.frames);
    edit_frames(args, &mut frames)?;

    if args.output.as_os_str() == "-" {
        let stdout = std::io::stdout();
        let mut lock = stdout.lock();
        anisoap_candle::xyz::write_xyz(&mut lock, &frames).context("writing to standard output")?;
        lock.flush().context("writing to standard output")?;
        return Ok(());
    }
    write_atomically(&args.output, |w| anisoap_candle::xyz::write_xyz(w, &frames))?;
    tracing::info!(
        path = %args.output.display(),
        frames = args.frames,
        particles = spec.n_particles,
        "wrote synthetic system"
    );
    Ok(())
}

/// Writes `path` through a temporary file in the same directory, renamed over `path` only once
/// everything was written and flushed, so that readers never see a partial file.
fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<&mut tempfile::NamedTempFile>) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    {
        let mut buffered = std::io::BufWriter::new(&mut tmp);
        write(&mut buffered).with_context(|| format!("writing {}", path.display()))?;
        buffered
            .flush()
            .with_context(|| format!("writing {}", path.display()))?;
    }
    #[cfg(unix)]
    {
        // NamedTempFile is created 0600; give the result the usual permissions of a new file.
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: GenerateArgs,
    }

    fn frames(extra: &[&str]) -> anyhow::Result<Vec<Frame>> {
        let mut argv = vec![
            "generate",
            "--particles",
            "9",
            "--species",
            "3",
            "--frames",
            "2",
            "--seed",
            "4",
            "-o",
            "-",
        ];
        argv.extend_from_slice(extra);
        let args = Cli::try_parse_from(argv)?.args;
        let mut frames = generate(&args.spec(), args.frames);
        edit_frames(&args, &mut frames)?;
        Ok(frames)
    }

    #[test]
    fn parsers() {
        assert_eq!(parse_pbc("T,T,F"), Ok([true, true, false]));
        assert_eq!(parse_pbc("TFT"), Ok([true, false, true]));
        assert_eq!(parse_pbc("F F T"), Ok([false, false, true]));
        assert!(parse_pbc("T,T").is_err() && parse_pbc("T,X,F").is_err());
        assert_eq!(parse_three("0.5,-1,2"), Ok([0.5, -1.0, 2.0]));
        assert!(parse_three("1,2").is_err() && parse_three("1,nan,2").is_err());
        assert_eq!(parse_shift("C:40,0,0"), Ok((6, [40.0, 0.0, 0.0])));
        assert!(parse_shift("Xx:1,2,3").is_err());
        assert_eq!(parse_relabel("1:C:H"), Ok((1, 6, 1)));
        assert!(parse_relabel("1:C").is_err());
    }

    /// Without the editing options, the frames are exactly the library's synthetic ones.
    #[test]
    fn default_output_is_unchanged() {
        let mut spec = SyntheticSpec::new(SystemKind::EllipsoidLiquid, 9);
        spec.n_species = 3;
        spec.seed = 4;
        assert_eq!(frames(&[]).unwrap(), generate(&spec, 2));
    }

    #[test]
    fn edits() {
        let plain = frames(&[]).unwrap();
        // Orientation matrices are the quaternions' rotations, row-major.
        let m = frames(&["--orientation", "matrix"]).unwrap();
        let q = &plain[0].arrays["c_q"];
        assert_eq!(m[0].arrays["c_q"].ncols, 9);
        let r = rotation::quaternion_to_matrix(q.row(2).try_into().unwrap()).unwrap();
        assert_eq!(m[0].arrays["c_q"].row(2), r.concat().as_slice());
        // Tilt keeps fractional coordinates; pbc as given.
        let t = frames(&["--tilt", "0.5,-0.25,0.1", "--pbc", "T,T,F"]).unwrap();
        let side = plain[0].cell[0][0];
        assert_eq!(t[0].cell[1], [0.5 * side, side, 0.0]);
        assert_eq!(t[0].cell[2], [-0.25 * side, 0.1 * side, side]);
        assert_eq!(t[0].pbc, [true, true, false]);
        let (p, s) = (plain[0].positions[3], t[0].positions[3]);
        assert!((s[0] - (p[0] + 0.5 * p[1] - 0.25 * p[2])).abs() < 1e-12);
        assert!((s[1] - (p[1] + 0.1 * p[2])).abs() < 1e-12 && s[2] == p[2]);
        assert!(frames(&["--open", "--pbc", "T,T,F"]).is_err());
        // Shift one species; relabel in one frame only.
        let s = frames(&["--shift-species", "C:40,0,-1", "--relabel", "1:C:H"]).unwrap();
        for (f, (a, b)) in plain.iter().zip(&s).enumerate() {
            for i in 0..a.len() {
                let shifted = a.numbers[i] == 6;
                let expected = if shifted {
                    [
                        a.positions[i][0] + 40.0,
                        a.positions[i][1],
                        a.positions[i][2] - 1.0,
                    ]
                } else {
                    a.positions[i]
                };
                assert_eq!(b.positions[i], expected);
                let label = if shifted && f == 1 { 1 } else { a.numbers[i] };
                assert_eq!(b.numbers[i], label);
            }
        }
        assert!(!s[1].numbers.contains(&6) && s[0].numbers.contains(&6));
        assert!(frames(&["--relabel", "2:C:H"]).is_err());
    }
}
