def loss_and_grads(params, x, y, h0, **options)
    return 0
