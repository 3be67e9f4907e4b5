//! The storage-dtype variants of a WGSL shader, made from its one source.
//! Every shader declares the element type of its tensor buffers on a line
//! `alias S = f32;` and loads with `f32(x[i])`, stores with `S(v)`, so all
//! arithmetic is f32 whatever the storage. The f16 variant swaps that line
//! for `alias S = f16;` and puts `enable f16;` first in the module, as WGSL
//! requires, on the first line, so line numbers in naga's errors are the
//! file's. Shared by `build.rs` (which validates every variant with naga)
//! and the runtime (which compiles them), so the two cannot drift apart.

/// The line every shader declares its storage element type on.
pub const STORAGE_ALIAS: &str = "alias S = f32;";

/// `src` with tensors stored as f16 (`half`) or f32; `None` when the shader
/// has no `alias S = f32;` line.
pub fn storage_variant(src: &str, half: bool) -> Option<String> {
    if !src.lines().any(|l| l.trim() == STORAGE_ALIAS) {
        return None;
    }
    if !half {
        return Some(src.to_string());
    }
    let mut out = String::from("enable f16; ");
    for line in src.lines() {
        if line.trim() == STORAGE_ALIAS {
            out.push_str("alias S = f16;");
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_f16_variant_enables_f16_first_and_keeps_line_numbers() {
        let src = "// doc\nalias S = f32;\nvar<storage> x: array<S>;\n";
        assert_eq!(storage_variant(src, false).unwrap(), src);
        let half = storage_variant(src, true).unwrap();
        assert!(half.starts_with("enable f16; // doc\n"), "{half}");
        assert_eq!(half.lines().nth(1), Some("alias S = f16;"));
        assert_eq!(half.lines().count(), src.lines().count());
        assert_eq!(storage_variant("var<storage> x: array<f32>;", true), None);
    }
}
