"""Layer families: masked convolutions, skewing, spatial LSTMs."""
