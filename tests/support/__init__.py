"""Test support: real images, trees, wheels, registries and hosts the tests build on."""
