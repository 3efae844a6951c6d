"""The stream pipeline: pure stages (parse, reassemble, decode) and the Faust wiring."""
