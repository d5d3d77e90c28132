// Shim over HDF5's C API. Predefined types and property lists are macros that call H5open() and
// read a global; flags are macros too. Each one used by dsan is a static inline getter here.
#ifndef DSAN_CHDF5_SHIM_H
#define DSAN_CHDF5_SHIM_H
#include <hdf5.h>

static inline hid_t dsan_h5p_default(void) { return H5P_DEFAULT; }
static inline hid_t dsan_h5s_all(void) { return H5S_ALL; }
static inline hid_t dsan_h5e_default(void) { return H5E_DEFAULT; }
static inline hid_t dsan_h5p_file_access(void) { return H5P_FILE_ACCESS; }
static inline hid_t dsan_h5p_file_create(void) { return H5P_FILE_CREATE; }
static inline hid_t dsan_h5p_dataset_create(void) { return H5P_DATASET_CREATE; }
static inline hid_t dsan_h5p_link_create(void) { return H5P_LINK_CREATE; }

static inline unsigned dsan_h5f_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline unsigned dsan_h5f_acc_rdwr(void) { return H5F_ACC_RDWR; }
static inline unsigned dsan_h5f_acc_trunc(void) { return H5F_ACC_TRUNC; }
static inline unsigned dsan_h5f_acc_excl(void) { return H5F_ACC_EXCL; }

static inline hid_t dsan_h5t_native_float(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t dsan_h5t_native_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t dsan_h5t_native_uint8(void) { return H5T_NATIVE_UINT8; }
static inline hid_t dsan_h5t_native_int32(void) { return H5T_NATIVE_INT32; }
static inline hid_t dsan_h5t_native_int64(void) { return H5T_NATIVE_INT64; }
static inline hid_t dsan_h5t_c_s1(void) { return H5T_C_S1; }
static inline size_t dsan_h5t_variable(void) { return H5T_VARIABLE; }
static inline hsize_t dsan_h5s_unlimited(void) { return H5S_UNLIMITED; }

// Variable-length buffers read by H5Dread/H5Aread are released with H5Treclaim from 1.12 on and
// H5Dvlen_reclaim before it.
static inline herr_t dsan_h5_reclaim(hid_t type_id, hid_t space_id, void *buf) {
#if H5_VERSION_GE(1, 12, 0)
    return H5Treclaim(type_id, space_id, H5P_DEFAULT, buf);
#else
    return H5Dvlen_reclaim(type_id, space_id, H5P_DEFAULT, buf);
#endif
}

// File locking off for read-only opens on shared cluster filesystems (1.10.7+).
static inline herr_t dsan_h5_disable_file_locking(hid_t fapl) {
#if H5_VERSION_GE(1, 10, 7)
    return H5Pset_file_locking(fapl, 0, 1);
#else
    (void)fapl;
    return 0;
#endif
}
#endif
