// Shim over OpenMPI's C API. MPI's handles and constants are C macros (often casts of the address
// of a global), which Swift cannot import; each one used by dsan is a static inline getter here.
#ifndef DSAN_CMPI_SHIM_H
#define DSAN_CMPI_SHIM_H
#include <mpi.h>

static inline MPI_Comm dsan_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Comm dsan_mpi_comm_null(void) { return MPI_COMM_NULL; }
static inline MPI_Datatype dsan_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype dsan_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype dsan_mpi_int32(void) { return MPI_INT32_T; }
static inline MPI_Datatype dsan_mpi_int64(void) { return MPI_INT64_T; }
static inline MPI_Datatype dsan_mpi_uint8(void) { return MPI_UINT8_T; }
static inline MPI_Datatype dsan_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Op dsan_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op dsan_mpi_max(void) { return MPI_MAX; }
static inline MPI_Op dsan_mpi_min(void) { return MPI_MIN; }
static inline void *dsan_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Errhandler dsan_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline MPI_Request dsan_mpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Status *dsan_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline int dsan_mpi_any_source(void) { return MPI_ANY_SOURCE; }
static inline int dsan_mpi_any_tag(void) { return MPI_ANY_TAG; }
static inline int dsan_mpi_success(void) { return MPI_SUCCESS; }
static inline int dsan_mpi_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
static inline int dsan_mpi_thread_single(void) { return MPI_THREAD_SINGLE; }
static inline int dsan_mpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
static inline int dsan_mpi_thread_serialized(void) { return MPI_THREAD_SERIALIZED; }
static inline int dsan_mpi_thread_multiple(void) { return MPI_THREAD_MULTIPLE; }
#endif
