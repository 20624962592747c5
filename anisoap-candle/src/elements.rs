//! Chemical element symbols and atomic numbers, as ASE assigns them.
//!
//! Symbols are case-sensitive in the ASE spelling (first letter upper case, the rest lower case,
//! e.g. `He`). ASE's dummy symbol `X` has atomic number 0.

/// Element symbols indexed by atomic number; index 0 is ASE's dummy `X`.
const SYMBOLS: [&str; 119] = [
    "X", "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P", "S",
    "Cl", "Ar", "K", "Ca", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge",
    "As", "Se", "Br", "Kr", "Rb", "Sr", "Y", "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd",
    "In", "Sn", "Sb", "Te", "I", "Xe", "Cs", "Ba", "La", "Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd",
    "Tb", "Dy", "Ho", "Er", "Tm", "Yb", "Lu", "Hf", "Ta", "W", "Re", "Os", "Ir", "Pt", "Au", "Hg",
    "Tl", "Pb", "Bi", "Po", "At", "Rn", "Fr", "Ra", "Ac", "Th", "Pa", "U", "Np", "Pu", "Am", "Cm",
    "Bk", "Cf", "Es", "Fm", "Md", "No", "Lr", "Rf", "Db", "Sg", "Bh", "Hs", "Mt", "Ds", "Rg", "Cn",
    "Nh", "Fl", "Mc", "Lv", "Ts", "Og",
];

/// Atomic number of an element symbol spelled as ASE does (`"H"` → 1, `"Og"` → 118, `"X"` → 0).
///
/// The match is case-sensitive: `"he"` and `"HE"` are not recognised (the XYZ reader normalises
/// the case of the species column first, as ASE does). Returns `None` for unknown symbols.
pub fn atomic_number(symbol: &str) -> Option<i32> {
    SYMBOLS
        .iter()
        .position(|&s| s == symbol)
        .and_then(|i| i32::try_from(i).ok())
}

/// Element symbol of an atomic number (`1` → `"H"`, `0` → `"X"`); `None` outside `0..=118`.
pub fn symbol(number: i32) -> Option<&'static str> {
    usize::try_from(number)
        .ok()
        .and_then(|i| SYMBOLS.get(i).copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_elements() {
        assert_eq!(atomic_number("X"), Some(0));
        assert_eq!(atomic_number("H"), Some(1));
        assert_eq!(atomic_number("He"), Some(2));
        assert_eq!(atomic_number("C"), Some(6));
        assert_eq!(atomic_number("O"), Some(8));
        assert_eq!(atomic_number("Fe"), Some(26));
        assert_eq!(atomic_number("I"), Some(53));
        assert_eq!(atomic_number("Xe"), Some(54));
        assert_eq!(atomic_number("W"), Some(74));
        assert_eq!(atomic_number("U"), Some(92));
        assert_eq!(atomic_number("Og"), Some(118));
        assert_eq!(symbol(0), Some("X"));
        assert_eq!(symbol(79), Some("Au"));
        assert_eq!(symbol(118), Some("Og"));
    }

    #[test]
    fn unknown_and_out_of_range() {
        for s in ["", "he", "HE", "Xx", "Uue", "h", " H", "H "] {
            assert_eq!(atomic_number(s), None, "{s:?}");
        }
        assert_eq!(symbol(-1), None);
        assert_eq!(symbol(119), None);
        assert_eq!(symbol(i32::MIN), None);
        assert_eq!(symbol(i32::MAX), None);
    }

    #[test]
    fn inverse_for_all_numbers() {
        for z in 0..=118 {
            let s = symbol(z).unwrap();
            assert_eq!(atomic_number(s), Some(z));
            let mut chars = s.chars();
            assert!(chars.next().unwrap().is_ascii_uppercase());
            assert!(chars.all(|c| c.is_ascii_lowercase()));
        }
        let mut sorted = SYMBOLS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 119);
    }
}
