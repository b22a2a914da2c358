namespace overcast::ps {}
