//! How a training phase runs: its schedule and losses ([`Fit`]) and how it corrects for
//! rare classes ([`Balance`]).

/// How one training phase runs.
#[derive(Debug, Clone)]
pub struct Fit {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    /// 0: never stop early.
    pub patience: usize,
    pub adversarial_weight: f64,
    /// Share of each batch that is attacked.
    pub share: f64,
    /// Epochs without adversarial examples first.
    pub clean_epochs: usize,
    /// Examples of the validation split attacked to score the objective (caps the cost).
    pub validation_attack_examples: usize,
    /// TRADES (Zhang et al. 2019): the loss is `CE(clean) + β · KL(p_clean ‖ p_adv)`
    /// instead of the weighted mix, and the attack aims away from the model's own clean
    /// prediction rather than the label.
    pub trades_beta: Option<f64>,
    /// Keep the epoch with the best accuracy on the attacked validation examples rather
    /// than the best loss objective (adversarial epochs only): under the probe attack when
    /// the adversary has one, else under the training attack.
    pub stop_on_robust_accuracy: bool,
    /// Validate and keep an exponential moving average of the weights with this decay
    /// (`average.rs`) instead of the optimiser's last weights; `None`: the weights as
    /// trained.
    pub weight_average: Option<f64>,
}

impl Fit {
    /// Clean training for `epochs` of `batch_size` at `lr`: no adversarial examples, no
    /// weight decay, no early stopping; set the rest with struct update syntax.
    pub fn clean(epochs: usize, batch_size: usize, lr: f64) -> Self {
        Self {
            epochs,
            batch_size,
            lr,
            weight_decay: 0.0,
            patience: 0,
            adversarial_weight: 0.0,
            share: 1.0,
            clean_epochs: 0,
            validation_attack_examples: 0,
            trades_beta: None,
            stop_on_robust_accuracy: false,
            weight_average: None,
        }
    }
}

/// How a phase corrects for rare classes (`[train] class_weight` and `sampling`), for clean
/// training and adversarial fine-tuning alike. The default changes nothing: the trainer
/// then takes exactly the steps it takes without it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Balance {
    /// One weight per class: every loss (training, validation, the early-stopping
    /// objective) is the weighted mean `Σ c_y · CE / Σ c_y`.
    pub class_weights: Option<Vec<f64>>,
    /// Each epoch draws as many examples as the training split holds, with replacement,
    /// a class chosen uniformly first. Drawn from the epoch's own seed, so a resumed epoch
    /// draws the same examples: nothing more is saved with the commits.
    pub sampling: bool,
}
