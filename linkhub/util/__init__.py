"""Small helpers any layer may use (times, ids, JSON depth, wording, log set-up); they import no other layer."""
