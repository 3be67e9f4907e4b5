//! The geometry of a sliding window over a batch of channels-last images,
//! shared by the convolution and pooling kernels of every backend. Images
//! are stored `[h, w, c]` per example (a 1-D signal is `h = 1`), so the
//! patch matrix of a convolution is `[n * out_h * out_w, c * kh * kw]` and a
//! convolution is one GEMM with the `[c_out, c * kh * kw]` weight, which is
//! PyTorch's `[out, in, kh, kw]` layout read as a matrix.

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    /// Images per group (examples in a batch).
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub ph: usize,
    pub pw: usize,
}

impl Window {
    /// A square window over `n` images `[h, w, c]` (`h = 1`, `k` along w
    /// only, for 1-D signals).
    pub fn square(
        n: usize,
        (c, h, w): (usize, usize, usize),
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Self {
        let one_d = h == 1;
        Window {
            n,
            c,
            h,
            w,
            kh: if one_d { 1 } else { k },
            kw: k,
            sh: if one_d { 1 } else { stride },
            sw: stride,
            ph: if one_d { 0 } else { pad },
            pw: pad,
        }
    }

    /// Checks that the window fits: positive sizes and a kernel no larger
    /// than the padded image.
    pub fn check(&self) -> Result<()> {
        let sizes = [
            self.n, self.c, self.h, self.w, self.kh, self.kw, self.sh, self.sw,
        ];
        if sizes.contains(&0) {
            return Err(Error::shape(format!("window {self:?} has a zero size")));
        }
        if self.kh > self.h + 2 * self.ph || self.kw > self.w + 2 * self.pw {
            return Err(Error::shape(format!(
                "a {}x{} kernel does not fit a {}x{} image with padding {}x{}",
                self.kh, self.kw, self.h, self.w, self.ph, self.pw
            )));
        }
        Ok(())
    }

    pub fn out_h(&self) -> usize {
        (self.h + 2 * self.ph - self.kh) / self.sh + 1
    }

    pub fn out_w(&self) -> usize {
        (self.w + 2 * self.pw - self.kw) / self.sw + 1
    }

    /// Window positions per image.
    pub fn positions(&self) -> usize {
        self.out_h() * self.out_w()
    }

    /// Entries of one patch: `c * kh * kw`.
    pub fn patch(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Values of one group of images: `n * h * w * c`.
    pub fn image_len(&self) -> usize {
        self.n * self.h * self.w * self.c
    }

    /// Values of one group's patch matrix.
    pub fn cols_len(&self) -> usize {
        self.n * self.positions() * self.patch()
    }

    /// How many groups (ensemble members) a tensor of `len` values holds
    /// when each group is `group` values.
    pub fn groups(&self, len: usize, group: usize, what: &str) -> Result<usize> {
        self.check()?;
        if group == 0 || len % group != 0 || len == 0 {
            return Err(Error::shape(format!(
                "{what}: {len} values are not whole groups of {group} for window {self:?}"
            )));
        }
        Ok(len / group)
    }
}

impl Window {
    /// The groups in an `im2col` input of shape `x` and the patch matrix's
    /// shape.
    pub fn im2col_shape(&self, x: &[usize]) -> Result<(usize, Vec<usize>)> {
        let g = self.groups(x.iter().product(), self.image_len(), "im2col")?;
        self.one_group_unless_rank3("im2col", x, g)?;
        let rows = self.n * self.positions();
        Ok((
            g,
            if x.len() >= 3 {
                vec![g, rows, self.patch()]
            } else {
                vec![rows, self.patch()]
            },
        ))
    }

    /// A rank-2 operand holds one group; several need the leading dimension.
    fn one_group_unless_rank3(&self, what: &str, shape: &[usize], groups: usize) -> Result<()> {
        if shape.len() < 3 && groups != 1 {
            return Err(Error::shape(format!(
                "{what}: a rank-2 operand {shape:?} holds {groups} groups for window {self:?}; give them as [groups, ...]"
            )));
        }
        Ok(())
    }

    /// The groups in a `col2im` input of shape `cols` and the images' shape.
    pub fn col2im_shape(&self, cols: &[usize]) -> Result<(usize, Vec<usize>)> {
        let g = self.groups(cols.iter().product(), self.cols_len(), "col2im")?;
        self.one_group_unless_rank3("col2im", cols, g)?;
        let per = self.h * self.w * self.c;
        Ok((
            g,
            if cols.len() >= 3 {
                vec![g, self.n, per]
            } else {
                vec![self.n, per]
            },
        ))
    }
}
