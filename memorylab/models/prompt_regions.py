"""The regions of a /chat prompt as the reader head sees it: what it is told about each token's place."""

PAD, SEPARATOR, MEMORY, QUESTION = 0, 1, 2, 3
