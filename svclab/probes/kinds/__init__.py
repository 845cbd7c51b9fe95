"""One module per probe kind: each defines Spec, Expect, observe() and judge() (see ..base).
A module added here is a new probe kind; nothing else needs to know about it."""
