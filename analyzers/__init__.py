"""The analysis library: the Analyzer contract, decoding, and one analyzer per module. Imports no Ray."""
