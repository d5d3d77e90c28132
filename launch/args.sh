# Option checks shared by the launch scripts (sourced after setting DSAN_SCRIPT to the script's
# name). Each stops the script with exit status 2 and a message naming the script, the option and
# what it takes, before anything runs: a missing or malformed value used to surface as bash's
# "unbound variable", a division by zero or an error deep inside mpirun or dsan.

dsan_usage_error() { echo "${DSAN_SCRIPT:-launch}: $*" >&2; exit 2; }

# dsan_value OPTION COUNT: call in the option loop with "$1" $# before reading $2.
dsan_value() { [ "$2" -ge 2 ] || dsan_usage_error "$1 needs a value"; }

# dsan_positive OPTION VALUE: a whole number ≥ 1.
dsan_positive() { [[ $2 =~ ^[1-9][0-9]*$ ]] || dsan_usage_error "$1 must be a whole number of at least 1, got '$2'"; }

# dsan_volume OPTION VALUE: DxHxW, three whole numbers ≥ 1.
dsan_volume() { [[ $2 =~ ^[1-9][0-9]*x[1-9][0-9]*x[1-9][0-9]*$ ]] || dsan_usage_error "$1 must be DxHxW (e.g. 64x128x128), got '$2'"; }
