//! PTX kept on disk between runs, so that NVRTC compiles each kernel source once per machine
//! rather than once per process (the three modules of a `compute` run take 100–170 ms of NVRTC
//! on the H200 host, before the input is read).
//!
//! Where: `ANISOAP_CUDA_CACHE` (a directory; `off` or an empty value turns the cache off), else
//! `$XDG_CACHE_HOME/anisoap-candle/ptx`, else `$HOME/.cache/anisoap-candle/ptx`. One file per
//! compiled source, named after the kernel file and a 128-bit hash of everything the PTX
//! depends on: the source (baked kernels differ per basis), the compile options (architecture,
//! FMA contraction) and this crate's version. Files are written to a temporary name and renamed,
//! so a reader never sees half a file; a file that does not look like PTX is ignored, and one
//! the driver refuses is recompiled and replaced by the caller (`fused_cuda::load_module`).
//! Plain file handling, no CUDA: tested on every machine.

use std::path::{Path, PathBuf};

/// The cache directory, or `None` when the cache is off or no home directory is known.
pub fn cache_dir() -> Option<PathBuf> {
    dir_from(
        std::env::var_os("ANISOAP_CUDA_CACHE"),
        std::env::var_os("XDG_CACHE_HOME"),
        std::env::var_os("HOME"),
    )
}

/// [`cache_dir`] from the three variables' values.
fn dir_from(
    explicit: Option<std::ffi::OsString>,
    xdg: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Option<PathBuf> {
    if let Some(dir) = explicit {
        if dir.is_empty() || dir == "off" {
            return None;
        }
        return Some(PathBuf::from(dir));
    }
    let base = match xdg.filter(|x| !x.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(home.filter(|h| !h.is_empty())?).join(".cache"),
    };
    Some(base.join("anisoap-candle").join("ptx"))
}

/// The cache file of kernel file `name` compiled from `source` with NVRTC `options`.
pub fn entry_path(dir: &Path, name: &str, source: &str, options: &[String]) -> PathBuf {
    let mut key = Vec::with_capacity(source.len() + 256);
    for part in [env!("CARGO_PKG_VERSION"), name, source]
        .into_iter()
        .chain(options.iter().map(String::as_str))
    {
        // Length-prefixed, so that no two different lists give the same bytes.
        key.extend_from_slice(&(part.len() as u64).to_le_bytes());
        key.extend_from_slice(part.as_bytes());
    }
    let hash = xxhash_rust::xxh3::xxh3_128(&key);
    let stem = name.strip_suffix(".cu").unwrap_or(name);
    dir.join(format!("{stem}-{hash:032x}.ptx"))
}

/// The PTX at `path` if it is there and looks like PTX (a `.version` and a `.target`
/// directive).
pub fn read(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    (text.contains(".version") && text.contains(".target")).then_some(text)
}

/// Writes `ptx` to `path` (its directory created if needed) through a temporary file in the
/// same directory and a rename.
pub fn write(path: &Path, ptx: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("cache path has no directory"))?;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("ptx"),
        std::process::id()
    ));
    std::fs::write(&tmp, ptx)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    #[test]
    fn directory_follows_the_variables() {
        let s = |v: &str| Some(OsString::from(v));
        assert_eq!(
            dir_from(s("/x/c"), s("/xdg"), s("/home/u")),
            Some("/x/c".into())
        );
        assert_eq!(dir_from(s("off"), s("/xdg"), s("/home/u")), None);
        assert_eq!(dir_from(s(""), None, s("/home/u")), None);
        assert_eq!(
            dir_from(None, s("/xdg"), s("/home/u")),
            Some("/xdg/anisoap-candle/ptx".into())
        );
        assert_eq!(
            dir_from(None, None, s("/home/u")),
            Some("/home/u/.cache/anisoap-candle/ptx".into())
        );
        assert_eq!(dir_from(None, s(""), None), None);
    }

    #[test]
    fn entries_differ_by_source_and_options_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let opts = vec!["--gpu-architecture=compute_90".to_string()];
        let a = entry_path(dir.path(), "pair_coefficients.cu", "src a", &opts);
        assert_eq!(
            a,
            entry_path(dir.path(), "pair_coefficients.cu", "src a", &opts)
        );
        assert_ne!(
            a,
            entry_path(dir.path(), "pair_coefficients.cu", "src b", &opts)
        );
        assert_ne!(
            a,
            entry_path(dir.path(), "pair_coefficients.cu", "src a", &[])
        );
        // The split between name and source counts, not only their concatenation.
        assert_ne!(
            entry_path(dir.path(), "ab", "c", &opts),
            entry_path(dir.path(), "a", "bc", &opts)
        );
        let name = a.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("pair_coefficients-") && name.ends_with(".ptx"),
            "{name}"
        );
        assert_eq!(read(&a), None);
        let ptx = "//\n.version 8.8\n.target sm_90\n.address_size 64\n";
        write(&a, ptx).unwrap();
        assert_eq!(read(&a).as_deref(), Some(ptx));
        // No temporary file is left beside it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // Something that is not PTX is not returned.
        std::fs::write(&a, "garbage").unwrap();
        assert_eq!(read(&a), None);
        // A directory that does not exist yet is created.
        let nested = dir.path().join("x").join("y").join("k.ptx");
        write(&nested, ptx).unwrap();
        assert_eq!(read(&nested).as_deref(), Some(ptx));
    }
}
