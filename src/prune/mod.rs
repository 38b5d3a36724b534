//! Pruning: the [`Mask`] type, pruning strategies over (network, mask), and iterative magnitude
//! pruning with rewinding ([`imp`]) that turns a pre-trained network into lottery tickets.

mod imp;
mod mask;
pub mod strategy;

pub use imp::{
    imp, read_recovery, recovery_sentence, round_path, ImpConfig, ImpRecipe, Recovery, Rewind, Strategy, Ticket, Tickets, RECOVERED_POINTS,
};
pub use mask::{LayerDensity, Mask, MaskMeta};
pub use strategy::{global_magnitude, layerwise_magnitude, one_shot_like, random_global, random_like};
