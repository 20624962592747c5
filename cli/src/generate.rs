//! `generate` subcommand: writes seeded synthetic systems of ellipsoids as extended XYZ.

use std::io::Write;
use std::path::{Path, PathBuf};

use anisoap_candle::synthetic::{generate, SyntheticSpec, SystemKind};
use anyhow::Context;

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

    /// Output file (extended XYZ); written atomically, replacing any existing file.
    /// Use `-` for standard output.
    #[arg(long, short = 'o')]
    pub output: PathBuf,
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

/// Runs the `generate` subcommand.
pub fn run(args: &GenerateArgs) -> anyhow::Result<()> {
    let spec = args.spec();
    spec.validate()
        .map_err(|message| anyhow::anyhow!("invalid arguments: {message}"))?;
    anyhow::ensure!(
        args.frames >= 1,
        "invalid arguments: --frames must be at least 1"
    );
    let frames = generate(&spec, args.frames);

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
