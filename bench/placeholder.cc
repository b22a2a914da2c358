namespace overcast::bench {}
