"""Operations: compare what a host has with what is wanted, and change it."""
