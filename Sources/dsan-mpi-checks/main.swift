import MPI
print("placeholder")
