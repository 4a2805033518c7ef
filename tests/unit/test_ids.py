import numpy as np

from pipeline.ids import in_sorted, positions_of


def test_in_sorted_marks_the_values_present_in_the_sorted_set():
    values = np.array([5, 1, 9, 3, 12], dtype=np.int64)
    np.testing.assert_array_equal(in_sorted(values, np.array([1, 3, 5, 7])), [True, True, False, True, False])
    np.testing.assert_array_equal(in_sorted(values, np.array([], dtype=np.int64)), [False] * 5)


def test_positions_of_puts_rows_read_by_id_back_in_the_asked_order():
    ids = np.array([40, 10, 30, 20], dtype=np.int64)  # rows as read, in any order
    wanted = np.array([20, 40, 20, 10], dtype=np.int64)  # as asked, repeats allowed
    np.testing.assert_array_equal(ids[positions_of(ids, wanted)], wanted)
