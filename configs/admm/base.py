"""Shared settings of the ADMM paper's experiments (Kiaee et al. 2016).

The paper: SGD, learning rate 0.001, batch 128; per-mu epochs min(i*delta, nu*delta) with delta=1, nu=15;
at most xi=10 ADMM iterations per mu. The authors' code: rho=100, mu on logspace(-4, 0, 20) from its second
point, nu=20. The configs use the code's rho and grid (our choice) and say so.
"""
import ml_collections


def get_base_config(model, dataset):
    config = ml_collections.ConfigDict()
    config.model = model
    config.dataset = dataset
    config.data_dir = ml_collections.FieldReference(None, field_type=str)
    config.train_examples = ml_collections.FieldReference(None, field_type=int)  # None: the whole split
    config.seed = 0
    config.batch_size = 128
    config.learning_rate = 0.001  # the paper's; plain SGD as the authors' code
    config.momentum = 0.0
    config.pretrain_epochs = 20  # dense training before the mu path (the paper starts from a trained model)
    config.pretrained = ml_collections.FieldReference(None, field_type=str)  # a .keras file to start from
    config.penalty = "l0"
    config.block = "filter"
    config.rho = 100.0
    config.mu_start = 1e-4
    config.mu_stop = 1.0
    config.mu_num = 20
    config.mu_start_index = 1
    config.max_mus = ml_collections.FieldReference(None, field_type=int)  # stop the path early (smoke runs)
    config.delta = 1
    config.nu = 20
    config.xi = 10
    config.epsilon = 1e-4
    config.stopping = "boyd"  # the authors' residual test; "paper" for ||W-F||, ||F-F_prev|| <= epsilon
    config.guard = 0.5
    config.finetune = True
    config.strategy = "auto"  # see train/train.py: auto | mirrored | multi_worker | default
    config.checkpoint_every_steps = ml_collections.FieldReference(500, field_type=int)  # plus every epoch end
    config.progress = True
    return config
