//! NumPy `.npy` files (format versions 1, 2 and 3), parsed from bytes.
//!
//! Only what a data set needs: little-endian numeric and boolean dtypes,
//! C or Fortran order (Fortran is transposed into C order here so every
//! consumer sees row-major data). Integers stay integers so that label arrays
//! can be told apart from regression targets.

use crate::error::{Error, Result};
use std::path::Path;

const MAGIC: &[u8] = b"\x93NUMPY";

/// Element values, widened to one integer and one float type.
#[derive(Clone, Debug, PartialEq)]
pub enum NpyData {
    Float(Vec<f64>),
    Int(Vec<i64>),
}

/// An n-dimensional array in C (row-major) order.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: NpyData,
}

impl NpyArray {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.data {
            NpyData::Float(v) => v.len(),
            NpyData::Int(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as f64 (integers beyond 2^53 lose precision); float
    /// data is moved, not copied, since data sets can be large.
    pub fn into_f64(self) -> Vec<f64> {
        match self.data {
            NpyData::Float(v) => v,
            NpyData::Int(v) => v.into_iter().map(|i| i as f64).collect(),
        }
    }
}

/// Reads and parses the `.npy` file at `path`.
pub fn read(path: &Path) -> Result<NpyArray> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse(&bytes, &path.display().to_string())
}

/// Parses `.npy` bytes; `origin` names the file (or archive member) in errors.
pub fn parse(bytes: &[u8], origin: &str) -> Result<NpyArray> {
    let fail = |msg: String| Error::data(origin, msg);
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(fail(
            "not a .npy file: it does not start with the magic bytes \\x93NUMPY".into(),
        ));
    }
    if bytes.len() < 8 {
        return Err(fail(format!(
            "truncated header: expected at least 8 bytes, found {}",
            bytes.len()
        )));
    }
    let major = bytes[6];
    // Version 1 stores the header length in 2 bytes, versions 2 and 3 in 4.
    let (len_bytes, start) = match major {
        1 => (2, 10),
        2 | 3 => (4, 12),
        v => {
            return Err(fail(format!(
                "unsupported .npy format version {v}.{}",
                bytes[7]
            )))
        }
    };
    if bytes.len() < start {
        return Err(fail(format!(
            "truncated header: expected at least {start} bytes, found {}",
            bytes.len()
        )));
    }
    let header_len = bytes[8..8 + len_bytes]
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | b as usize);
    let data_start = start + header_len;
    if bytes.len() < data_start {
        return Err(fail(format!(
            "truncated header: expected {data_start} bytes of header, found {}",
            bytes.len()
        )));
    }
    // Version 3 headers are UTF-8, earlier ones Latin-1; the keys and values
    // we read are ASCII either way, so a lossy decode is enough.
    let text = String::from_utf8_lossy(&bytes[start..data_start]);
    let header = parse_header(&text).map_err(|m| fail(format!("bad header {text:?}: {m}")))?;
    let dtype = Dtype::parse(&header.descr).map_err(fail)?;

    let count = header
        .shape
        .iter()
        .try_fold(1usize, |acc, &s| acc.checked_mul(s))
        .ok_or_else(|| fail(format!("shape {:?} is too large", header.shape)))?;
    let expected = count
        .checked_mul(dtype.size)
        .ok_or_else(|| fail(format!("shape {:?} is too large", header.shape)))?;
    let found = bytes.len() - data_start;
    if found != expected {
        let what = if found < expected {
            "truncated data"
        } else {
            "trailing bytes"
        };
        return Err(fail(format!(
            "{what}: shape {:?} of {} needs {expected} bytes of data, found {found}",
            header.shape, header.descr
        )));
    }
    let data = dtype.decode(&bytes[data_start..]).map_err(fail)?;
    let data = if header.fortran_order && header.shape.len() > 1 {
        match data {
            NpyData::Float(v) => NpyData::Float(fortran_to_c(&v, &header.shape)),
            NpyData::Int(v) => NpyData::Int(fortran_to_c(&v, &header.shape)),
        }
    } else {
        data
    };
    Ok(NpyArray {
        shape: header.shape,
        data,
    })
}

/// Reorders column-major elements into row-major order.
fn fortran_to_c<T: Copy>(v: &[T], shape: &[usize]) -> Vec<T> {
    // Walk the C-order multi-index like an odometer (last axis fastest) and
    // keep the matching Fortran offset (first axis has stride 1) in step.
    let mut f_strides = vec![1usize; shape.len()];
    for k in 1..shape.len() {
        f_strides[k] = f_strides[k - 1] * shape[k - 1];
    }
    let mut idx = vec![0usize; shape.len()];
    let mut offset = 0usize;
    let mut out = Vec::with_capacity(v.len());
    for _ in 0..v.len() {
        out.push(v[offset]);
        for k in (0..shape.len()).rev() {
            idx[k] += 1;
            offset += f_strides[k];
            if idx[k] < shape[k] {
                break;
            }
            offset -= f_strides[k] * shape[k];
            idx[k] = 0;
        }
    }
    out
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Bool,
    Int,
    Uint,
    Float,
}

struct Dtype {
    kind: Kind,
    size: usize,
}

impl Dtype {
    fn parse(descr: &str) -> std::result::Result<Dtype, String> {
        let unsupported = || {
            format!(
                "unsupported dtype '{descr}': expected one of |u1 |i1 |b1 <u2 <u4 <u8 <i2 <i4 <i8 <f4 <f8"
            )
        };
        let mut chars = descr.chars();
        let order = chars.next().ok_or_else(unsupported)?;
        let kind = match chars.next() {
            Some('b') => Kind::Bool,
            Some('i') => Kind::Int,
            Some('u') => Kind::Uint,
            Some('f') => Kind::Float,
            _ => return Err(unsupported()),
        };
        let size: usize = chars.as_str().parse().map_err(|_| unsupported())?;
        let ok = match kind {
            Kind::Bool => size == 1,
            Kind::Int | Kind::Uint => matches!(size, 1 | 2 | 4 | 8),
            Kind::Float => matches!(size, 4 | 8),
        };
        if !ok {
            return Err(unsupported());
        }
        match order {
            '<' | '=' | '|' => {}
            // Byte order is meaningless for one-byte types.
            '>' if size == 1 => {}
            '>' => {
                return Err(format!(
                    "dtype '{descr}' is big-endian; convert it with arr.astype(arr.dtype.newbyteorder('<'))"
                ))
            }
            _ => return Err(unsupported()),
        }
        Ok(Dtype { kind, size })
    }

    fn decode(&self, b: &[u8]) -> std::result::Result<NpyData, String> {
        let chunks = b.chunks_exact(self.size);
        Ok(match (self.kind, self.size) {
            (Kind::Float, 4) => NpyData::Float(
                chunks
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
                    .collect(),
            ),
            (Kind::Float, _) => NpyData::Float(
                chunks
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
            ),
            (Kind::Uint, 8) => NpyData::Int(
                chunks
                    .map(|c| {
                        let u = u64::from_le_bytes(c.try_into().unwrap());
                        i64::try_from(u)
                            .map_err(|_| format!("uint64 value {u} does not fit in i64"))
                    })
                    .collect::<std::result::Result<_, _>>()?,
            ),
            (kind, size) => NpyData::Int(
                chunks
                    .map(|c| {
                        // Little-endian: sign- or zero-extend the top byte.
                        let mut buf = [0u8; 8];
                        buf[..size].copy_from_slice(c);
                        if kind == Kind::Int && c[size - 1] & 0x80 != 0 {
                            buf[size..].fill(0xff);
                        }
                        i64::from_le_bytes(buf)
                    })
                    .collect(),
            ),
        })
    }
}

struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

enum Value {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
    // Anything else (e.g. a structured dtype's list), kept as text for errors.
    Other(String),
}

/// Parses the Python dict literal of the header, e.g.
/// `{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }`.
fn parse_header(text: &str) -> std::result::Result<Header, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    p.expect(b'{')?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        p.ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.ws();
        p.expect(b':')?;
        p.ws();
        let value = p.value()?;
        match (key.as_str(), value) {
            ("descr", Value::Str(s)) => descr = Some(s),
            ("descr", Value::Other(s)) => {
                return Err(format!(
                    "unsupported dtype {s}: structured arrays are not data sets"
                ))
            }
            ("fortran_order", Value::Bool(b)) => fortran = Some(b),
            ("shape", Value::Tuple(t)) => shape = Some(t),
            ("descr" | "fortran_order" | "shape", _) => {
                return Err(format!("'{key}' has an unexpected value"))
            }
            // Unknown keys are allowed by the format; ignore them.
            _ => {}
        }
        p.ws();
        if !p.eat(b',') {
            p.ws();
            p.expect(b'}')?;
            break;
        }
    }
    Ok(Header {
        descr: descr.ok_or("no 'descr' key")?,
        fortran_order: fortran.ok_or("no 'fortran_order' key")?,
        shape: shape.ok_or("no 'shape' key")?,
    })
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        if hit {
            self.i += 1;
        }
        hit
    }

    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected '{}' at offset {}", c as char, self.i))
        }
    }

    fn string(&mut self) -> std::result::Result<String, String> {
        let q = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => return Err(format!("expected a quoted string at offset {}", self.i)),
        };
        self.i += 1;
        let start = self.i;
        while self.peek().is_some_and(|c| c != q) {
            self.i += 1;
        }
        let s = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
        self.expect(q)?;
        Ok(s)
    }

    fn value(&mut self) -> std::result::Result<Value, String> {
        match self.peek() {
            Some(b'\'' | b'"') => Ok(Value::Str(self.string()?)),
            Some(b'(') => {
                self.i += 1;
                let mut dims = Vec::new();
                loop {
                    self.ws();
                    if self.eat(b')') {
                        break;
                    }
                    let start = self.i;
                    while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                        self.i += 1;
                    }
                    let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                    dims.push(
                        digits
                            .parse()
                            .map_err(|_| format!("bad dimension at offset {start}"))?,
                    );
                    // Python 2 wrote long integers as e.g. `3L`.
                    self.eat(b'L');
                    self.ws();
                    if !self.eat(b',') {
                        self.ws();
                        self.expect(b')')?;
                        break;
                    }
                }
                Ok(Value::Tuple(dims))
            }
            Some(b'[' | b'{') => {
                // Skip a nested literal, keeping its text for the error.
                let start = self.i;
                let mut depth = 0i32;
                while let Some(c) = self.peek() {
                    self.i += 1;
                    match c {
                        b'[' | b'{' | b'(' => depth += 1,
                        b']' | b'}' | b')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                Ok(Value::Other(
                    String::from_utf8_lossy(&self.s[start..self.i]).into_owned(),
                ))
            }
            _ => {
                let rest = &self.s[self.i..];
                if rest.starts_with(b"True") {
                    self.i += 4;
                    Ok(Value::Bool(true))
                } else if rest.starts_with(b"False") {
                    self.i += 5;
                    Ok(Value::Bool(false))
                } else {
                    Err(format!("unexpected value at offset {}", self.i))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fortran_order_3d_matches_c_order() {
        // shape (2, 3, 2): element (i, j, k) has value 100i + 10j + k.
        let shape = [2, 3, 2];
        let mut f = vec![0i64; 12];
        for i in 0..2 {
            for j in 0..3 {
                for k in 0..2 {
                    f[i + 2 * j + 6 * k] = 100 * i as i64 + 10 * j as i64 + k as i64;
                }
            }
        }
        let c = fortran_to_c(&f, &shape);
        let want: Vec<i64> = (0..2)
            .flat_map(|i| (0..3).flat_map(move |j| (0..2).map(move |k| 100 * i + 10 * j + k)))
            .collect();
        assert_eq!(c, want);
    }

    #[test]
    fn header_with_unknown_key_and_no_trailing_comma() {
        let h = parse_header("{'shape': (), \"descr\": '<f8', 'x': 'y', 'fortran_order': True}")
            .unwrap();
        assert_eq!(h.descr, "<f8");
        assert!(h.fortran_order);
        assert!(h.shape.is_empty());
    }
}
