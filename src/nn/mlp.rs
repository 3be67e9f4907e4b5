//! The multilayer perceptron as one configuration of the layer graph: any
//! depth and width, optional biases, any activation and parametrization.
//! Layer l is `layers.{l}` (`nn.Linear`), so MLP checkpoints keep their
//! names. Deep linear networks are the identity-activation case.

use crate::nn::activation::Activation;
use crate::nn::graph::ModelSpec;
use crate::nn::layer_spec::LayerSpec;
use crate::nn::parametrization::{LayerScale, Parametrization};
use crate::nn::shape::Shape;

#[derive(Clone, Debug)]
pub struct MlpSpec {
    /// `[input, hidden..., output]`; the number of dense layers is
    /// `sizes.len() - 1`.
    pub sizes: Vec<usize>,
    pub activation: Activation,
    pub bias: bool,
    pub parametrization: Parametrization,
    pub base_width: usize,
}

impl MlpSpec {
    /// `depth` dense layers: input -> width -> ... -> width -> output.
    pub fn new(
        input: usize,
        width: usize,
        depth: usize,
        output: usize,
        activation: Activation,
    ) -> Self {
        let mut sizes = vec![input];
        sizes.extend(std::iter::repeat_n(width, depth.saturating_sub(1)));
        sizes.push(output);
        MlpSpec {
            sizes,
            activation,
            bias: true,
            parametrization: Parametrization::Standard,
            base_width: width,
        }
    }

    pub fn layers(&self) -> usize {
        self.sizes.len() - 1
    }

    pub fn scales(&self) -> Vec<LayerScale> {
        self.parametrization
            .layer_scales(&self.sizes, self.base_width)
    }

    /// Parameters of one ensemble member.
    pub fn param_count(&self) -> usize {
        self.sizes
            .windows(2)
            .map(|w| w[0] * w[1] + if self.bias { w[1] } else { 0 })
            .sum()
    }

    /// The dense layers, the last without activation.
    pub fn layer_specs(&self) -> Vec<LayerSpec> {
        let layers = self.layers();
        (0..layers)
            .map(|l| LayerSpec::Dense {
                width: self.sizes[l + 1],
                bias: self.bias,
                activation: (l + 1 < layers).then(|| self.activation.name().to_string()),
            })
            .collect()
    }
}

impl From<MlpSpec> for ModelSpec {
    fn from(m: MlpSpec) -> ModelSpec {
        // A single layer has no width to scale with.
        let width = if m.layers() > 1 {
            m.sizes[1]
        } else {
            m.base_width
        };
        ModelSpec {
            input: Shape::Flat(m.sizes[0]),
            layers: m.layer_specs(),
            parametrization: m.parametrization,
            width,
            base_width: m.base_width,
        }
    }
}
