import SheafCLI
import SheafLinearAlgebra

// First thing: run the best OpenBLAS core for this CPU (may re-execute the process once; see OpenBLASCore).
OpenBLASCore.selectBestCore()
SheafCommand.main()
