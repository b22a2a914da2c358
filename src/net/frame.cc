#include "net/frame.h"
