"""Online data augmentation of training batches: spatial and intensity transforms shared by the training loop and
the strategies that build their own views (unimatch's strong views)."""
